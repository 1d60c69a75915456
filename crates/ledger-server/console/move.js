// Moving money. Every form sends an Idempotency-Key made when the form is
// filled in: a double click, or sending again after a network error,
// repeats the same request, which the ledger applies once. Any edit, and
// every success, makes a new key, so the next, different payment is never
// refused as a reuse of the last one's key.

import { call, may } from "./api.js";
import { h, fill, field, shortId, when, problemBlock, notify } from "./dom.js";
import { parseAmount, format, scaleOf } from "./money.js";

/** A random UUID, also where crypto.randomUUID is missing (plain http off localhost). */
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

async function currencyOfAccount(id) {
  return (await call("GET", `/accounts/${id}`)).body.currency;
}

/**
 * The forms. Each: what it is called, the scope it needs, its fields, where
 * the amount's currency comes from, and the request it makes.
 */
export const KINDS = {
  transfer: {
    title: "Transfer",
    button: "Send",
    scope: "write",
    fields: [
      { name: "source", label: "From account", id: true },
      { name: "destination", label: "To account", id: true },
      { name: "amount", label: "Amount", amount: true },
      { name: "metadata", label: "Metadata (JSON object, optional)", json: true, optional: true },
    ],
    currency: (v) => currencyOfAccount(v.source),
    request: (v) => ["POST", "/transfers", { source: v.source, destination: v.destination, amount: v.amount, metadata: v.metadata }],
  },
  deposit: {
    title: "Deposit",
    button: "Deposit",
    scope: "treasury",
    fields: [
      { name: "account", label: "Into account", id: true },
      { name: "amount", label: "Amount", amount: true },
      { name: "metadata", label: "Metadata (JSON object, optional)", json: true, optional: true },
    ],
    currency: (v) => currencyOfAccount(v.account),
    request: (v) => ["POST", `/accounts/${v.account}/deposits`, { amount: v.amount, metadata: v.metadata }],
  },
  withdrawal: {
    title: "Withdrawal",
    button: "Withdraw",
    scope: "treasury",
    fields: [
      { name: "account", label: "From account", id: true },
      { name: "amount", label: "Amount", amount: true },
      { name: "metadata", label: "Metadata (JSON object, optional)", json: true, optional: true },
    ],
    currency: (v) => currencyOfAccount(v.account),
    request: (v) => ["POST", `/accounts/${v.account}/withdrawals`, { amount: v.amount, metadata: v.metadata }],
  },
  hold: {
    title: "Hold",
    button: "Place hold",
    scope: "write",
    fields: [
      { name: "source", label: "From account", id: true },
      { name: "destination", label: "To account", id: true },
      { name: "amount", label: "Amount", amount: true },
      { name: "timeout_seconds", label: "Expires after (seconds, optional)", number: true, optional: true },
      { name: "metadata", label: "Metadata (JSON object, optional)", json: true, optional: true },
    ],
    currency: (v) => currencyOfAccount(v.source),
    request: (v) => ["POST", "/holds", {
      source: v.source, destination: v.destination, amount: v.amount,
      timeout_seconds: v.timeout_seconds, metadata: v.metadata,
    }],
  },
  capture: {
    title: "Capture a hold",
    button: "Capture",
    scope: "write",
    fields: [
      { name: "hold", label: "Hold id", id: true },
      { name: "amount", label: "Amount (optional: the whole hold)", amount: true, optional: true },
    ],
    currency: async (v) => (await call("GET", `/holds/${v.hold}`)).body.currency,
    request: (v) => ["POST", `/holds/${v.hold}/capture`, { amount: v.amount }],
  },
  void: {
    title: "Void a hold",
    button: "Void",
    scope: "write",
    fields: [{ name: "hold", label: "Hold id", id: true }],
    request: (v) => ["POST", `/holds/${v.hold}/void`, undefined],
  },
  reversal: {
    title: "Reversal",
    button: "Reverse",
    scope: "write",
    fields: [
      { name: "transfer", label: "Transfer id", id: true },
      { name: "amount", label: "Amount (optional: all that is left)", amount: true, optional: true },
      { name: "metadata", label: "Metadata (JSON object, optional)", json: true, optional: true },
    ],
    currency: async (v) => (await call("GET", `/transfers/${v.transfer}`)).body.currency,
    request: (v) => ["POST", `/transfers/${v.transfer}/reversals`, { amount: v.amount, metadata: v.metadata }],
  },
};

/** Reads and checks the fields; {values} or {error}. Amounts are checked once the currency is known. */
function read(form, kind) {
  const values = {};
  for (const spec of kind.fields) {
    const text = form.elements[spec.name].value.trim();
    if (!text) {
      if (spec.optional) continue;
      return { error: `${spec.label}: required.` };
    }
    if (spec.id && !UUID.test(text)) return { error: `${spec.label}: not an id (expected a UUID such as 0191…-…).` };
    if (spec.json) {
      try {
        values[spec.name] = JSON.parse(text);
      } catch {
        return { error: `${spec.label}: not valid JSON.` };
      }
      if (typeof values[spec.name] !== "object" || Array.isArray(values[spec.name]) || values[spec.name] === null) {
        return { error: `${spec.label}: must be a JSON object, e.g. {"order": "A-17"}.` };
      }
      continue;
    }
    if (spec.number) {
      if (!/^\d+$/.test(text)) return { error: `${spec.label}: a whole number of seconds.` };
      values[spec.name] = Number(text);
      continue;
    }
    values[spec.name] = text;
  }
  return { values };
}

/** What a success says. */
function success(kindName, body, replayed) {
  const again = replayed ? " (sent again: the ledger applied it once)" : "";
  if (kindName === "hold" || kindName === "void") {
    return h("p", { class: "ok", role: "status", "data-id": body.id },
      `Hold ${body.status}: ${format(body.amount, body.currency)}${again}. Id `, shortId(body.id));
  }
  return h("p", { class: "ok", role: "status", "data-id": body.id },
    `Done${again}: ${format(body.amount, body.currency)} moved, transfer `, shortId(body.id),
    ` at ${when(body.created_at)}.`);
}

/** One money-moving form. `prefill`: {field: value}; `onDone(body)` after a success. */
export function paymentForm(kindName, { prefill = {}, onDone, headingLevel = "h2" } = {}) {
  const kind = KINDS[kindName];
  let idempotencyKey = newKey();
  let sending = false;
  const out = h("div", { class: "out", "aria-live": "polite" });
  const hint = h("small", { class: "hint currency-hint" });
  const button = h("button", { type: "submit" }, kind.button);
  const form = h("form", { class: "card payment", "data-kind": kindName, "aria-label": kind.title },
    h(headingLevel, {}, kind.title),
    kind.fields.map((spec) => field({
      label: spec.label,
      name: spec.name,
      type: spec.json ? "textarea" : "text",
      value: prefill[spec.name] ?? "",
      inputmode: spec.amount ? "decimal" : spec.number ? "numeric" : null,
      autocomplete: "off",
      spellcheck: "false",
      required: !spec.optional,
      rows: spec.json ? 2 : null,
    })),
    hint, out, button);
  const remember = () => form.setAttribute("data-idempotency-key", idempotencyKey);
  remember();
  // An edit makes it a different request: a new key.
  form.addEventListener("input", () => {
    idempotencyKey = newKey();
    remember();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (sending) return;
    sending = true;
    button.disabled = true;
    fill(out);
    try {
      const { values, error } = read(form, kind);
      if (error) {
        fill(out, h("p", { class: "problem", role: "alert" }, error));
        return;
      }
      if (kind.currency && values.amount !== undefined) {
        const currency = await kind.currency(values);
        const parsed = parseAmount(values.amount, currency);
        if (parsed.error) {
          fill(out, h("p", { class: "problem", role: "alert" }, `Amount: ${parsed.error}`));
          return;
        }
        values.amount = parsed.amount;
        fill(hint, `${currency}: ${scaleOf(currency)} decimals.`);
      }
      const [method, path, body] = kind.request(values);
      const response = await call(method, path, { body, idempotencyKey });
      const replayed = response.headers.get("idempotent-replayed") === "true";
      fill(out, success(kindName, response.body, replayed));
      notify(`${kind.title}: done.`);
      // The next payment is a new one, even with the same values.
      idempotencyKey = newKey();
      remember();
      onDone?.(response.body);
    } catch (error) {
      // The key is kept: sending again (after a network error, say) is the
      // same request, applied at most once.
      fill(out, problemBlock(error));
    } finally {
      sending = false;
      button.disabled = false;
    }
  });
  return form;
}

/** The move-money page: the forms this key may use, or the one `only` names. */
export async function moveView(only, id) {
  const allowed = Object.keys(KINDS).filter((name) => may(KINDS[name].scope));
  if (allowed.length === 0) {
    return h("section", { class: "card" }, h("h1", {}, "Move money"),
      h("p", {}, "This key can only read. Moving money needs a key with scope write (transfers, holds) or treasury (deposits, withdrawals)."));
  }
  const shown = only && allowed.includes(only) ? [only] : allowed;
  const prefillFor = (name) => {
    if (!id) return {};
    const first = KINDS[name].fields[0].name;
    return { [first]: id };
  };
  return h("section", {},
    h("h1", {}, "Move money"),
    h("nav", { class: "tabs", "aria-label": "Kinds of movement" },
      allowed.map((name) => h("a", { href: `#/move/${name}`, "aria-current": shown.length === 1 && shown[0] === name ? "page" : null }, KINDS[name].title))),
    h("div", { class: "grid" }, shown.map((name) => paymentForm(name, { prefill: prefillFor(name) }))));
}
