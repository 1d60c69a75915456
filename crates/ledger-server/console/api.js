// The ledger's API, called with the key the person signed in with. The key
// lives in this tab's sessionStorage only: never in a URL, a cookie or
// localStorage, so it is gone when the tab closes and no other tab sees it.

const KEY = "ledger.key";
const SELF = "ledger.self";

export function signedIn() {
  return sessionStorage.getItem(KEY) !== null;
}

/** The key's own description ({id, name, scope, accounts}), from GET /keys/self. */
export function self() {
  const text = sessionStorage.getItem(SELF);
  return text ? JSON.parse(text) : null;
}

const RANK = { read: 0, write: 1, treasury: 2, admin: 3 };

/** Whether the signed-in key's scope grants `scope` (read < write < treasury < admin). */
export function may(scope) {
  const key = self();
  if (!key || !(key.scope in RANK)) return false;
  return RANK[key.scope] >= RANK[scope];
}

/** Checks a key by asking the ledger what it is, then keeps it. */
export async function signIn(key) {
  const response = await call("GET", "/keys/self", { key });
  sessionStorage.setItem(KEY, key);
  sessionStorage.setItem(SELF, JSON.stringify(response.body));
  return response.body;
}

export function signOut() {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(SELF);
}

/** A refusal of the API (problem+json), or a failure to reach it. */
export class Problem extends Error {
  constructor({ status, code, title, detail, requestId, network }) {
    super(detail || title || "request failed");
    Object.assign(this, { status, code, title, detail, requestId, network });
  }
}

/**
 * One API call. Resolves to {status, body, headers} for a 2xx; rejects with
 * a Problem otherwise. `idempotencyKey` is sent as Idempotency-Key; `raw`
 * returns the Response itself (for a CSV download).
 */
export async function call(method, path, { body, idempotencyKey, key, raw } = {}) {
  const headers = { Accept: "application/json, application/problem+json" };
  const secret = key ?? sessionStorage.getItem(KEY);
  if (secret) headers.Authorization = `Bearer ${secret}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch (error) {
    throw new Problem({
      network: true,
      title: "The ledger could not be reached",
      detail: `${error.message}. Nothing is lost: sending the same form again is safe, it is applied at most once.`,
    });
  }
  const requestId = response.headers.get("x-request-id");
  if (response.ok && raw) return response;
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) {
    throw new Problem({
      status: response.status,
      code: parsed?.code,
      title: parsed?.title ?? response.statusText,
      detail: parsed?.detail ?? text.slice(0, 200),
      requestId: parsed?.request_id ?? requestId,
    });
  }
  return { status: response.status, body: parsed, headers: response.headers, requestId };
}

const PLAIN = {
  unauthorized: "The key was not accepted: it may be mistyped or revoked. Sign in again.",
  forbidden: "This key is not allowed to do this.",
  insufficient_funds: "The paying account does not have enough money for this. Nothing was moved.",
  currency_mismatch: "The two accounts hold different currencies: money can only move within one currency.",
  idempotency_key_reused: "This form was already sent with different values. Edit it once more and send again.",
  idempotency_in_flight: "The same request is still being processed. Wait a moment and look at the account.",
  account_not_found: "No such account (or this key may not see it).",
  transfer_not_found: "No such transfer (or this key may not see it).",
  hold_not_found: "No such hold.",
  hold_not_pending: "This hold is no longer pending: it was captured, voided or has expired.",
  capture_exceeds_hold: "The capture is larger than the hold.",
  reversal_exceeds_transfer: "The reversal is larger than what is left of the transfer.",
  overdraft_in_use: "The overdraft line cannot go below what the account already owes.",
  account_closed: "The account is closed.",
  account_closing: "The account is being closed right now. Try again in a moment.",
  account_not_empty: "Only an account with a zero balance can be closed.",
  account_exists: "An account with this id already exists.",
  validation_failed: "The ledger refused the values:",
  invalid_request: "The request was malformed:",
  rate_limited: "Too many requests with this key. Wait a moment.",
  unavailable: "The ledger is unavailable right now. Try again shortly.",
  overloaded: "The ledger is busy right now. Try again shortly.",
  internal: "The ledger failed on its side. Give the request id below to support.",
};

/** A problem in plain words: {headline, detail, requestId}. */
export function explain(problem) {
  if (!(problem instanceof Problem)) {
    return { headline: "Something went wrong in the console.", detail: String(problem), requestId: null };
  }
  let headline = PLAIN[problem.code] ?? problem.title ?? "The request failed.";
  if (problem.code === "forbidden") {
    const key = self();
    headline = `This key (scope “${key?.scope ?? "?"}”) is not allowed to do this.`;
  }
  if (problem.network) headline = problem.title;
  return { headline, detail: problem.detail, requestId: problem.requestId };
}
