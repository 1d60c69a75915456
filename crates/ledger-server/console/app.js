// The console's shell: sign-in, navigation between the views (the part of
// the URL after #, so that reloading or sharing a link keeps the place but
// never the key), and the one place errors are shown.

import { self, signIn, signOut, signedIn, may } from "./api.js";
import { h, fill, field, problemBlock, notify } from "./dom.js";
import { loadCurrencies } from "./money.js";
import { accountsView } from "./accounts.js";
import { accountView } from "./account.js";
import { moveView } from "./move.js";
import { journalView } from "./journal.js";

const main = () => document.getElementById("main");

function signInView() {
  const form = h("form", { class: "card narrow", "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title" }, "Sign in"),
    h("p", {}, "Paste an API key (it starts with lk_). It is kept in this tab only, and forgotten when the tab closes."),
    field({ label: "API key", name: "key", type: "password", autocomplete: "off", required: true, spellcheck: "false" }),
    h("div", { class: "out" }),
    h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const out = form.querySelector(".out");
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      await signIn(form.elements.key.value.trim());
      form.reset();
      showNav();
      location.hash = "#/accounts";
      route();
    } catch (error) {
      fill(out, problemBlock(error));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function showNav() {
  const key = self();
  document.getElementById("nav").hidden = !key;
  document.getElementById("nav-move").hidden = !may("write");
  if (key) {
    const limited = key.accounts ? `, ${key.accounts.length} account(s)` : "";
    fill(document.getElementById("who"), `${key.name ?? "key"} · ${key.scope}${limited}`);
  }
}

async function route() {
  notify("");
  const container = main();
  if (!signedIn()) {
    fill(container, signInView());
    container.querySelector("input")?.focus();
    return;
  }
  const [, section, id, extra] = location.hash.split("/");
  let view;
  try {
    if (section === "accounts" && id) view = await accountView(decodeURIComponent(id), extra);
    else if (section === "move") view = await moveView(id, id ? decodeURIComponent(extra ?? "") : "");
    else if (section === "journal") view = await journalView(id ? decodeURIComponent(id) : "");
    else view = await accountsView();
  } catch (error) {
    if (error.status === 401) {
      // The key was revoked (or the ledger's keys were reset): sign in again.
      signOut();
      showNav();
      fill(container, signInView());
      container.querySelector("form .out").append(problemBlock(error));
      return;
    }
    view = h("section", { class: "card" }, h("h1", {}, "This page could not be shown"), problemBlock(error));
  }
  fill(container, view);
  const heading = container.querySelector("h1");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

document.getElementById("sign-out").addEventListener("click", () => {
  signOut();
  showNav();
  location.hash = "#/";
  route();
});
window.addEventListener("hashchange", route);
await loadCurrencies();
showNav();
route();
