//! Load shedding: a bound on the requests in flight in the whole process
//! (`LEDGER_MAX_IN_FLIGHT`, shared by every actix worker). A request beyond
//! it is answered 503 `overloaded` with `Retry-After: 1` at once: before its
//! body is read, before any handler runs, without touching the database. So
//! a retry is always safe, and a burst the service cannot serve costs it
//! almost nothing instead of queueing on the pool until every request times
//! out.
//!
//! The probes and the metrics (`/health`, `/ready`, `/metrics`) are never
//! shed and do not count against the bound: they must answer precisely when
//! the service is busiest.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web::Data;

use crate::error::{ApiError, ErrorCode};
use crate::handlers::AppState;

/// The paths that are never shed (nor counted in flight).
pub const NEVER_SHED: [&str; 3] = ["/health", "/ready", "/metrics"];

/// The requests in flight now, and the bound on them.
#[derive(Debug)]
pub struct InFlight {
    current: AtomicUsize,
    max: usize,
    shed: AtomicU64,
}

impl InFlight {
    /// At most `max` requests in flight at once (at least one).
    pub fn new(max: usize) -> Self {
        Self {
            current: AtomicUsize::new(0),
            max: max.max(1),
            shed: AtomicU64::new(0),
        }
    }

    /// Requests in flight now (those the bound applies to).
    pub fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    /// The bound.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Requests refused so far because the bound was reached.
    pub fn shed(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }

    /// A place in flight, or `None` (and one more shed) when all are taken.
    pub fn try_enter(self: &Arc<Self>) -> Option<Permit> {
        let before = self.current.fetch_add(1, Ordering::AcqRel);
        if before >= self.max {
            self.current.fetch_sub(1, Ordering::AcqRel);
            self.shed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(Permit(Arc::clone(self)))
    }
}

/// One request's place in flight, given back when dropped: when its response
/// is ready, or when the client went away and actix dropped the request.
#[derive(Debug)]
pub struct Permit(Arc<InFlight>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.current.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Middleware: admits a request when there is room in flight, else answers
/// 503 `overloaded` with `Retry-After: 1`.
pub async fn shed(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let in_flight = req
        .app_data::<Data<AppState>>()
        .map(|state| Arc::clone(&state.in_flight));
    let in_flight = match in_flight {
        Some(in_flight) if !NEVER_SHED.contains(&req.path()) => in_flight,
        _ => {
            return next
                .call(req)
                .await
                .map(ServiceResponse::map_into_boxed_body)
        }
    };
    let Some(permit) = in_flight.try_enter() else {
        let error = ApiError::new(
            ErrorCode::Overloaded,
            format!(
                "the service is at its limit of {} requests in flight; retry after Retry-After \
                 seconds (nothing of this request was done)",
                in_flight.max()
            ),
        );
        return Ok(req.error_response(error).map_into_boxed_body());
    };
    let response = next.call(req).await;
    drop(permit);
    response.map(ServiceResponse::map_into_boxed_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_admits_up_to_max_and_frees_a_place_when_a_permit_drops() {
        let in_flight = Arc::new(InFlight::new(2));
        let first = in_flight.try_enter().expect("room for one");
        let second = in_flight.try_enter().expect("room for two");
        assert!(in_flight.try_enter().is_none(), "a third is shed");
        assert_eq!((in_flight.current(), in_flight.shed()), (2, 1));
        drop(first);
        let third = in_flight.try_enter().expect("a place was freed");
        drop((second, third));
        assert_eq!((in_flight.current(), in_flight.shed()), (0, 1));
    }
}
