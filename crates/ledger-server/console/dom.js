import { explain } from "./api.js";

// Building the page. Everything is made with createElement and textContent,
// never innerHTML: a string from the ledger (metadata, say) stays text.

/** An element: h("p", {class: "x"}, "text", child, …). Attributes named
 * on… are listeners; false/null/undefined attributes are left out. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the children of `element`. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

let fieldCount = 0;

/** A labelled input: {label, name, type, value, hint, required, …}. */
export function field({ label, hint, ...input }) {
  const id = `f${++fieldCount}`;
  const hintId = hint ? `${id}-hint` : null;
  const control =
    input.type === "textarea"
      ? h("textarea", { id, ...input, type: null, value: null, "aria-describedby": hintId }, input.value ?? "")
      : input.type === "select"
        ? h("select", { id, name: input.name, required: input.required, "aria-describedby": hintId },
            input.options.map((option) => h("option", { value: option, selected: option === input.value }, option)))
        : h("input", { id, type: "text", ...input, "aria-describedby": hintId });
  return h("div", { class: "field" },
    h("label", { for: id }, label),
    control,
    hint ? h("small", { id: hintId, class: "hint" }, hint) : null);
}

/** A short id to show: the last 12 hex digits of a UUID, with the whole id in a title. */
export function shortId(id) {
  return h("code", { title: id, class: "id" }, id);
}

/** A date-time for people, in UTC (the ledger's time), to the second. */
export function when(text) {
  if (!text) return "";
  return text.replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC").replace("+00:00", " UTC");
}

/** A problem as a block: plain words, the ledger's detail, the request id. */
export function problemBlock(error) {
  const { headline, detail, requestId } = explain(error);
  return h("div", { class: "problem", role: "alert" },
    h("strong", {}, headline),
    detail ? h("p", {}, detail) : null,
    requestId ? h("p", { class: "request-id" }, "Request id (for support): ", h("code", {}, requestId)) : null);
}

/** A short message at the top of the page (success, or what happened). */
export function notify(text) {
  const notice = document.getElementById("notice");
  fill(notice, text);
  notice.hidden = !text;
}
