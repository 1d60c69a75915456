// The journal: the current digest, and a transfer's inclusion proof checked
// here, in the page, with the browser's own SHA-256 (README, "Verifiable
// journal"): the console does not take the ledger's word for it.

import { call } from "./api.js";
import { h, fill, field, shortId, when, problemBlock } from "./dom.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function fromHex(hex) {
  if (!/^([0-9a-f]{2})*$/i.test(hex)) throw new Error(`not hex: ${hex.slice(0, 16)}…`);
  return Uint8Array.from(hex.match(/../g) ?? [], (byte) => parseInt(byte, 16));
}

function toHex(bytes) {
  return [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

async function sha256(...parts) {
  const length = parts.reduce((sum, part) => sum + part.length, 0);
  const joined = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.length;
  }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", joined));
}

/**
 * Checks an inclusion proof; returns the steps, each {what, value, ok}.
 * 1. row_hash = sha256(previous_hash ‖ encoding); 2. leaf = sha256(0x00 ‖
 * row_hash); 3. fold the audit path (RFC 9162 §2.1.3.2); 4. it holds when
 * the path is used up exactly and the result is the digest's root.
 */
export async function checkProof(proof) {
  const steps = [];
  const row = await sha256(fromHex(proof.previous_hash), new TextEncoder().encode(proof.encoding));
  steps.push({ what: "row hash = sha256(previous hash ‖ encoding)", value: toHex(row), ok: toHex(row) === proof.row_hash });
  let result = await sha256(Uint8Array.of(0), row);
  steps.push({ what: "leaf = sha256(0x00 ‖ row hash)", value: toHex(result), ok: true });
  // Indices as BigInt: a tree may outgrow 2^53 leaves in principle, and
  // the arithmetic must not round.
  let fn = BigInt(proof.leaf_index);
  let sn = BigInt(proof.digest.tree_size) - 1n;
  let pathOk = fn <= sn;
  for (const hex of proof.audit_path) {
    if (sn === 0n) {
      pathOk = false;
      break;
    }
    const sibling = fromHex(hex);
    if (fn % 2n === 1n || fn === sn) {
      result = await sha256(Uint8Array.of(1), sibling, result);
      while (fn % 2n === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      result = await sha256(Uint8Array.of(1), result, sibling);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  pathOk = pathOk && sn === 0n;
  steps.push({ what: `fold the ${proof.audit_path.length} hashes of the audit path`, value: toHex(result), ok: pathOk });
  steps.push({ what: "equals the digest's root", value: proof.digest.root, ok: toHex(result) === proof.digest.root });
  return { steps, verified: steps.every((step) => step.ok) };
}

function digestCard() {
  const body = h("div", {});
  (async () => {
    try {
      const digest = (await call("GET", "/journal/digest")).body;
      fill(body, h("dl", { class: "facts-list" },
        h("dt", {}, "Covers every transfer before"), h("dd", {}, when(digest.at)),
        h("dt", {}, "Transfers (tree size)"), h("dd", { "data-figure": "tree-size" }, String(digest.tree_size)),
        h("dt", {}, "Root"), h("dd", {}, h("code", { class: "hash", "data-figure": "root" }, digest.root))),
      h("p", { class: "hint" }, "An auditor keeps (tree size, root): every later digest must extend it."));
    } catch (error) {
      fill(body, problemBlock(error));
    }
  })();
  return h("section", { class: "card", "aria-labelledby": "digest-title" }, h("h2", { id: "digest-title" }, "Current digest"), body);
}

function proofForm(initial) {
  const out = h("div", { class: "out", "aria-live": "polite" });
  const form = h("form", { class: "card", id: "proof", "aria-labelledby": "proof-title" },
    h("h2", { id: "proof-title" }, "Check a transfer's proof"),
    field({ label: "Transfer id", name: "transfer", value: initial, autocomplete: "off", spellcheck: "false", required: true }),
    h("button", { type: "submit" }, "Check"), out);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = form.elements.transfer.value.trim();
    if (!UUID.test(id)) {
      fill(out, h("p", { class: "problem", role: "alert" }, "That is not a transfer id (a UUID)."));
      return;
    }
    if (!crypto.subtle) {
      fill(out, h("p", { class: "problem", role: "alert" }, "This browser offers SHA-256 only on https or localhost pages: open the console there to check proofs."));
      return;
    }
    try {
      const proof = (await call("GET", `/transfers/${id}/proof`)).body;
      const { steps, verified } = await checkProof(proof);
      fill(out,
        h("p", { class: verified ? "ok" : "problem", role: "status", "data-verified": String(verified) },
          verified
            ? `Verified in this page: transfer ${id} is leaf ${proof.leaf_index} of the journal of ${proof.digest.tree_size} transfers before ${when(proof.digest.at)}.`
            : "NOT verified: the proof does not lead to the digest's root. Report this with the transfer id."),
        h("ol", { class: "steps" }, steps.map((step) =>
          h("li", {}, `${step.ok ? "✓" : "✗"} ${step.what}: `, h("code", { class: "hash" }, step.value)))),
        h("details", {}, h("summary", {}, "The transfer's canonical encoding"), h("pre", {}, proof.encoding)));
    } catch (error) {
      fill(out, problemBlock(error));
    }
  });
  // Once the form is on the page (a detached form cannot be submitted).
  if (initial) setTimeout(() => form.isConnected && form.requestSubmit(), 0);
  return form;
}

export async function journalView(transferId) {
  return h("section", {},
    h("h1", {}, "Journal"),
    h("p", {}, "Every final transfer is a leaf of one append-only Merkle tree. A proof shows that a transfer is in it; the check below runs in your browser."),
    h("div", { class: "grid" }, digestCard(), proofForm(transferId)),
    transferId ? h("p", {}, h("a", { href: `#/journal` }, "Clear"), " · transfer ", shortId(transferId)) : null);
}
