//! The route table: every operation of the API, registered once. A handler's
//! `#[utoipa::path]` names its method and path; [`operations`] pairs each
//! handler with it, and both the actix routes ([`register`]) and the OpenAPI
//! document ([`crate::openapi::document`]) are built from that one list, so
//! the served routes, the `Allow` header of a 405 and the document cannot
//! disagree.

use std::any::type_name;

use actix_web::middleware::from_fn;
use actix_web::{guard, web, FromRequest, Handler, HttpResponse, Responder};
use ledger_domain::Scope;
use utoipa::openapi::path::{HttpMethod, Paths};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa_actix_web::OpenApiFactory;

use crate::error::ApiError;
use crate::handlers::{accounts, batches, health, holds, journal, keys, statements, transfers};
use crate::{auth, replication};

/// One operation: a handler with the `#[utoipa::path]` that describes it.
pub struct Operation {
    /// The path template, e.g. `/accounts/{id}` (actix reads the same syntax).
    pub path: String,
    /// Its one method.
    pub method: HttpMethod,
    /// The OpenAPI path item of this operation alone.
    pub paths: Paths,
    /// The schemas its request and responses refer to.
    pub schemas: Vec<(String, RefOr<Schema>)>,
    /// The handler's Rust name, to check that it is the one its path
    /// describes (see the test below).
    pub handler_name: &'static str,
    /// What a caller's key must allow (see `crate::auth`); `None`: anyone,
    /// without a key.
    pub scope: Option<Scope>,
    route: actix_web::Route,
    body_limit_bytes: Option<usize>,
}

impl Operation {
    /// Pairs `handler` with `description`, the `__path_…` type that
    /// `#[utoipa::path]` generates next to it.
    fn new<P, F, Args>(description: P, handler: F) -> Self
    where
        P: utoipa::Path + OpenApiFactory,
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let method = match P::methods().as_slice() {
            [method] => method.clone(),
            methods => panic!("{} declares {} methods, not one", P::path(), methods.len()),
        };
        let mut schemas = Vec::new();
        description.schemas(&mut schemas);
        // Reading needs `read`, changing needs `write`; operations that
        // need more say so with `.scope(…)`.
        let scope = match method {
            HttpMethod::Get | HttpMethod::Head => Scope::Read,
            _ => Scope::Write,
        };
        Self {
            scope: Some(scope),
            path: P::path(),
            route: actix_route(&method).to(handler),
            method,
            paths: description.paths(),
            schemas,
            handler_name: type_name::<F>(),
            body_limit_bytes: None,
        }
    }

    /// Requires `scope` instead of the method's default.
    fn scope(mut self, scope: Scope) -> Self {
        self.scope = Some(scope);
        self
    }

    /// Answers anyone, without a key: the probes (a load balancer holds no
    /// key, and they carry no ledger data).
    fn public(mut self) -> Self {
        self.scope = None;
        self
    }

    /// Gives this operation's resource its own JSON body limit.
    fn body_limit_bytes(mut self, limit: usize) -> Self {
        self.body_limit_bytes = Some(limit);
        self
    }
}

/// Every operation of the API, in the order their methods are listed in
/// `Allow`. `batch_body_limit_bytes`: a batch's own body limit (up to 8,189
/// legs do not fit the general one).
pub fn operations(batch_body_limit_bytes: usize) -> Vec<Operation> {
    vec![
        Operation::new(health::__path_health, health::health).public(),
        Operation::new(health::__path_ready, health::ready).public(),
        Operation::new(accounts::__path_open_account, accounts::open_account),
        Operation::new(accounts::__path_list_accounts, accounts::list_accounts),
        Operation::new(accounts::__path_get_account, accounts::get_account),
        Operation::new(accounts::__path_close_account, accounts::close_account).scope(Scope::Admin),
        Operation::new(accounts::__path_balance, accounts::balance),
        Operation::new(accounts::__path_history, accounts::history),
        Operation::new(statements::__path_statement, statements::statement),
        Operation::new(accounts::__path_deposit, accounts::deposit).scope(Scope::Treasury),
        Operation::new(accounts::__path_withdraw, accounts::withdraw).scope(Scope::Treasury),
        Operation::new(
            transfers::__path_create_transfer,
            transfers::create_transfer,
        ),
        Operation::new(transfers::__path_list_transfers, transfers::list_transfers),
        Operation::new(transfers::__path_get_transfer, transfers::get_transfer),
        Operation::new(holds::__path_reverse_transfer, holds::reverse_transfer),
        Operation::new(holds::__path_place_hold, holds::place_hold),
        Operation::new(holds::__path_get_hold, holds::get_hold),
        Operation::new(holds::__path_capture_hold, holds::capture_hold),
        Operation::new(holds::__path_void_hold, holds::void_hold),
        Operation::new(holds::__path_list_account_holds, holds::list_account_holds),
        Operation::new(holds::__path_set_overdraft, holds::set_overdraft).scope(Scope::Treasury),
        Operation::new(batches::__path_create_batch, batches::create_batch)
            .body_limit_bytes(batch_body_limit_bytes),
        Operation::new(batches::__path_get_batch, batches::get_batch),
        Operation::new(journal::__path_proof, journal::proof),
        Operation::new(journal::__path_digest, journal::digest),
        Operation::new(journal::__path_consistency, journal::consistency),
        Operation::new(keys::__path_create_key, keys::create_key).scope(Scope::Admin),
        Operation::new(keys::__path_list_keys, keys::list_keys).scope(Scope::Admin),
        // Before `/keys/{id}`: actix gives a request to the first resource
        // whose pattern matches, and `{id}` matches `self`.
        Operation::new(keys::__path_own_key, keys::own_key),
        Operation::new(keys::__path_revoke_key, keys::revoke_key).scope(Scope::Admin),
    ]
}

/// One resource per path, with the routes of its operations; any other
/// method gets a 405 problem that lists the allowed ones.
pub fn register(
    operations: Vec<Operation>,
    json_error: fn(actix_web::error::JsonPayloadError, &actix_web::HttpRequest) -> actix_web::Error,
) -> Vec<actix_web::Resource> {
    let mut by_path: Vec<(String, Vec<Operation>)> = Vec::new();
    for operation in operations {
        match by_path.iter_mut().find(|(path, _)| *path == operation.path) {
            Some((_, group)) => group.push(operation),
            None => by_path.push((operation.path.clone(), vec![operation])),
        }
    }
    by_path
        .into_iter()
        .map(|(path, group)| {
            let limit = group
                .iter()
                .find_map(|operation| operation.body_limit_bytes);
            let routes = group
                .into_iter()
                .map(|operation| {
                    let route = match operation.method {
                        // Every write answers with its WAL position (reads
                        // on replicas with read-your-writes; see
                        // `replication`): one place, not every handler.
                        HttpMethod::Get | HttpMethod::Head => operation.route,
                        _ => operation.route.wrap(from_fn(replication::mark_position)),
                    };
                    let route = match operation.scope {
                        None => route,
                        Some(scope) => {
                            route.wrap(from_fn(move |req, next| auth::authorize(scope, req, next)))
                        }
                    };
                    (operation.method, route)
                })
                .collect();
            let resource = resource(&path, routes);
            match limit {
                Some(limit) => resource.app_data(
                    web::JsonConfig::default()
                        .limit(limit)
                        .error_handler(json_error),
                ),
                None => resource,
            }
        })
        .collect()
}

/// A resource with its methods; any other method gets a 405 problem whose
/// `Allow` lists them (GET with HEAD).
pub fn resource(path: &str, routes: Vec<(HttpMethod, actix_web::Route)>) -> actix_web::Resource {
    let allow = routes
        .iter()
        .map(|(method, _)| match method {
            HttpMethod::Get => "GET, HEAD",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Head => "HEAD",
            HttpMethod::Options => "OPTIONS",
            HttpMethod::Trace => "TRACE",
        })
        .collect::<Vec<_>>()
        .join(", ");
    routes
        .into_iter()
        .map(|(_, route)| route)
        .fold(web::resource(path), actix_web::Resource::route)
        .default_service(web::to(move || {
            let allow = allow.clone();
            async move { Err::<HttpResponse, _>(ApiError::method_not_allowed(&allow)) }
        }))
}

/// The actix route for a method. GET also answers HEAD (RFC 9110 §9.3.2:
/// wherever GET is served); actix-web sends a HEAD response's headers,
/// Content-Length included, without its body.
pub fn actix_route(method: &HttpMethod) -> actix_web::Route {
    match method {
        HttpMethod::Get => web::route().guard(guard::Any(guard::Get()).or(guard::Head())),
        HttpMethod::Post => web::post(),
        HttpMethod::Put => web::put(),
        HttpMethod::Delete => web::delete(),
        HttpMethod::Patch => web::patch(),
        HttpMethod::Head => web::head(),
        HttpMethod::Options => web::route().guard(guard::Options()),
        HttpMethod::Trace => web::route().guard(guard::Trace()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_handler_is_registered_with_its_own_description() {
        for operation in operations(1) {
            let item = operation
                .paths
                .paths
                .get(&operation.path)
                .expect("its path");
            let id = [&item.get, &item.post, &item.delete, &item.put, &item.patch]
                .into_iter()
                .flatten()
                .find_map(|op| op.operation_id.clone())
                .expect("an operation id");
            assert!(
                operation.handler_name.ends_with(&format!("::{id}")),
                "{} is registered with the description of {id}",
                operation.handler_name
            );
        }
    }
}
