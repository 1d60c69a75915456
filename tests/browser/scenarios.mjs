// The web console's scenarios, in headless Chromium against the real ledger
// service. scripts/browser-tests.sh starts the service on a fresh database
// and passes LEDGER_URL, ADMIN_KEY, READ_KEY and CHROMIUM.
//
// Every scenario saves a screenshot in screenshots/ (ignored by git). Every
// request the browser makes is recorded, and the run fails if one leaves
// the service's origin. What the page shows is checked against the API,
// asked directly with the admin key.

import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const BASE = process.env.LEDGER_URL;
const ADMIN_KEY = process.env.ADMIN_KEY;
const READ_KEY = process.env.READ_KEY;
assert.ok(BASE && ADMIN_KEY && READ_KEY, "LEDGER_URL, ADMIN_KEY and READ_KEY are set by scripts/browser-tests.sh");
const ORIGIN = new URL(BASE).origin;
const SHOTS = join(dirname(fileURLToPath(import.meta.url)), "screenshots");
mkdirSync(SHOTS, { recursive: true });
const FIRST_LOAD_BUDGET_BYTES = 300 * 1024;
// How long the page may take to show something (finality included).
const SLOW_MS = 25_000;

/** The API, asked directly (not through the page). */
async function api(method, path, body) {
  const response = await fetch(`${BASE}${path}`, {
    method,
    headers: { Authorization: `Bearer ${ADMIN_KEY}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = text; // a CSV statement
  }
  return { status: response.status, body: parsed };
}

async function balanceOf(id) {
  return (await api("GET", `/accounts/${id}/balance`)).body.balance;
}

async function outgoing(id) {
  const page = (await api("GET", `/accounts/${id}/transfers?limit=1000`)).body;
  return page.items.filter((entry) => entry.direction === "out").map((entry) => entry.transfer);
}

const runStarted = Date.now();

// Features that arrive with issue 14 (holds, reversals, statements, the
// metadata filter) are tested when the served API document has them, and
// must then pass: a scenario is skipped only when its operation is absent.
const DOCUMENT = await (await fetch(`${BASE}/openapi.json`)).json();
const documented = (path) => path in DOCUMENT.paths;
const accountListParameters = (DOCUMENT.paths["/accounts"]?.get?.parameters ?? []).map((p) => p.name);
const HAS = {
  holds: documented("/holds") && documented("/holds/{id}/capture") && documented("/accounts/{id}/holds"),
  reversals: documented("/transfers/{id}/reversals"),
  statements: documented("/accounts/{id}/statement"),
  overdraft: documented("/accounts/{id}/overdraft"),
  metadataFilter: accountListParameters.some((name) => name.startsWith("metadata")),
};
console.log(`API document: ${JSON.stringify(HAS)}`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // Root in a CI container cannot use Chromium's sandbox.
  args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
});

/** Every request of every page, to check that none leaves the origin. */
const requests = [];
/** Errors the pages' scripts threw or logged: each fails the run. */
const pageErrors = [];

async function newPage({ width = 1100, height = 900 } = {}) {
  // UTC, so that the as-of picker's local time is the ledger's time.
  const context = await browser.newContext({ viewport: { width, height }, timezoneId: "UTC", locale: "en-GB" });
  const page = await context.newPage();
  page.on("request", (request) => requests.push(request.url()));
  page.on("pageerror", (error) => pageErrors.push(`${page.url()}: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error" && !/Failed to load resource: the server responded with a status of (4\d\d)/.test(message.text())) {
      pageErrors.push(`${page.url()}: console: ${message.text()}`);
    }
  });
  return page;
}

const results = [];
async function scenario(name, run) {
  const started = Date.now();
  try {
    const outcome = await run();
    results.push({ name, ok: true, note: outcome ?? "", ms: Date.now() - started });
    console.log(`ok    ${name}${outcome ? ` (${outcome})` : ""}`);
  } catch (error) {
    results.push({ name, ok: false, note: error.stack ?? String(error), ms: Date.now() - started });
    console.log(`FAIL  ${name}\n${error.stack ?? error}`);
  }
}

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** Shows a console page afresh (the views are read when they are shown). */
async function visit(page, hash) {
  // A bare change of the fragment would not reload the same view; the key
  // survives in the tab's sessionStorage.
  await page.goto("about:blank");
  await page.goto(`${BASE}/console/${hash}`);
}

async function signIn(page, key) {
  await page.goto(`${BASE}/console/`);
  await page.getByLabel("API key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Accounts", level: 1 }).waitFor();
}

/** Opens an account through the form; returns its id. */
async function openAccount(page, initialBalance, metadata) {
  await visit(page, `#/accounts`);
  const form = page.locator("#open-account");
  await form.getByLabel("Currency").selectOption("USD");
  await form.getByLabel("Initial balance").fill(initialBalance);
  if (metadata) await form.getByLabel(/Metadata/).fill(JSON.stringify(metadata));
  await form.getByRole("button", { name: "Open account" }).click();
  const done = form.locator(".ok[data-id]");
  await done.waitFor();
  return done.getAttribute("data-id");
}

async function figure(page, name) {
  return (await page.locator(`[data-figure="${name}"]`).first().textContent()).trim();
}

/** Waits until a figure of the page shows `text`. */
async function expectFigure(page, name, text) {
  await page.locator(`[data-figure="${name}"]`, { hasText: text }).first().waitFor({ timeout: SLOW_MS });
}

const admin = await newPage();
let a;
let b;
let beforeTransfer;

await scenario("sign in, and the first load stays under 300 KB", async () => {
  // Each response's size is known once its body has arrived: collect the
  // promises, and add them up once the page is idle.
  const measured = [];
  const count = (response) => {
    measured.push(response.request().sizes().then((sizes) => ({ url: response.url(), bytes: sizes.responseBodySize + sizes.responseHeadersSize })));
  };
  admin.on("response", count);
  await admin.goto(`${BASE}/console/`, { waitUntil: "networkidle" });
  admin.off("response", count);
  const sizes = await Promise.all(measured);
  const bytes = sizes.reduce((sum, size) => sum + size.bytes, 0);
  const counted = sizes.map((size) => size.url);
  assert.ok(bytes > 0 && counted.some((url) => url.endsWith("app.js")), `the console's files were loaded: ${counted}`);
  assert.ok(bytes < FIRST_LOAD_BUDGET_BYTES, `first load ${bytes} bytes ≥ ${FIRST_LOAD_BUDGET_BYTES}`);
  await shot(admin, "01-sign-in");
  // A wrong key is refused, in plain words, with the request id.
  await admin.getByLabel("API key").fill(`lk_${"0".repeat(64)}`);
  await admin.getByRole("button", { name: "Sign in" }).click();
  await admin.locator(".problem", { hasText: "The key was not accepted" }).waitFor();
  assert.match(await admin.locator(".request-id code").textContent(), /\S{8,}/);
  await signIn(admin, ADMIN_KEY);
  // The key is in this tab's sessionStorage, nowhere else.
  const storage = await admin.evaluate(() => ({
    session: sessionStorage.getItem("ledger.key"),
    local: localStorage.length,
    cookies: document.cookie,
    url: location.href,
  }));
  assert.equal(storage.session, ADMIN_KEY);
  assert.equal(storage.local, 0);
  assert.equal(storage.cookies, "");
  assert.ok(!storage.url.includes(ADMIN_KEY));
  await shot(admin, "02-signed-in");
  return `first load ${bytes} bytes in ${counted.length} responses`;
});

await scenario("open two accounts", async () => {
  a = await openAccount(admin, "100.00", { owner: "alice", console_test: "a" });
  b = await openAccount(admin, "5", { owner: "bob" });
  assert.equal(await balanceOf(a), "100.00");
  // Typed "5": sent as the exact "5.00" of a two-decimal currency.
  assert.equal(await balanceOf(b), "5.00");
  await visit(admin, `#/accounts`);
  await admin.locator(`tr[data-id="${a}"]`).waitFor();
  await shot(admin, "03-accounts");
});

await scenario("transfer between them, and both balances change", async () => {
  // A whole second that has passed after the openings and before the
  // transfer: the as-of scenario asks for the balance then.
  beforeTransfer = new Date(Math.ceil(Date.now() / 1000) * 1000 + 1000);
  await sleep(beforeTransfer.getTime() - Date.now() + 200);
  await visit(admin, `#/accounts/${a}`);
  await expectFigure(admin, "balance", "100.00 USD");
  const send = admin.locator('form[data-kind="transfer"]');
  assert.equal(await send.getByLabel("From account").inputValue(), a);
  await send.getByLabel("To account").fill(b);
  await send.getByLabel("Amount").fill("30");
  await send.getByRole("button", { name: "Send" }).click();
  await send.locator(".ok[data-id]").waitFor();
  await expectFigure(admin, "balance", "70.00 USD");
  // The history reloads after the transfer: wait for the new newest row.
  await admin.locator("#history tbody tr").first().filter({ hasText: "−30.00 USD" }).waitFor();
  assert.match(await admin.locator("#history tbody tr").first().textContent(), /−30\.00 USD.*70\.00 USD/);
  await shot(admin, "04-transfer-source");
  await visit(admin, `#/accounts/${b}`);
  await expectFigure(admin, "balance", "35.00 USD");
  await shot(admin, "05-transfer-destination");
  assert.equal(await balanceOf(a), "70.00");
  assert.equal(await balanceOf(b), "35.00");
});

await scenario('double-click on "Send" makes exactly one transfer', async () => {
  await visit(admin, `#/accounts/${a}`);
  const send = admin.locator('form[data-kind="transfer"]');
  await send.getByLabel("To account").fill(b);
  await send.getByLabel("Amount").fill("1.25");
  const before = (await outgoing(a)).length;
  await send.getByRole("button", { name: "Send" }).dblclick();
  await send.locator(".ok[data-id]").waitFor();
  // Give a second request, if one was sent, time to land.
  await sleep(500);
  const after = await outgoing(a);
  assert.equal(after.length, before + 1, "one transfer more, not two");
  assert.equal(after.filter((t) => t.amount === "1.25").length, 1);
  assert.equal(await balanceOf(a), "68.75");
  // The next payment, with the very same values, is a new one: applied.
  const usedKey = await send.getAttribute("data-idempotency-key");
  await send.getByRole("button", { name: "Send" }).click();
  await expectFigure(admin, "balance", "67.50 USD");
  assert.notEqual(await send.getAttribute("data-idempotency-key"), usedKey);
  assert.equal((await outgoing(a)).length, before + 2);
  await shot(admin, "06-double-click");
});

await scenario("insufficient funds shows the error and changes nothing", async () => {
  await visit(admin, `#/accounts/${a}`);
  await expectFigure(admin, "balance", "67.50 USD");
  const before = (await outgoing(a)).length;
  const send = admin.locator('form[data-kind="transfer"]');
  await send.getByLabel("To account").fill(b);
  await send.getByLabel("Amount").fill("1000.00");
  await send.getByRole("button", { name: "Send" }).click();
  const problem = send.locator(".problem");
  await problem.waitFor();
  assert.match(await problem.textContent(), /does not have enough money/);
  assert.match(await problem.locator(".request-id code").textContent(), /^[0-9a-f-]{36}$/);
  // A scale the currency does not have is refused in the page, before any request.
  await send.getByLabel("Amount").fill("1.005");
  await send.getByRole("button", { name: "Send" }).click();
  await send.locator(".problem", { hasText: "USD has 2 decimals at most" }).waitFor();
  assert.equal(await balanceOf(a), "67.50");
  assert.equal((await outgoing(a)).length, before);
  assert.equal(await figure(admin, "balance"), "67.50 USD");
  await shot(admin, "07-insufficient-funds");
});

await scenario("the as-of picker shows an earlier balance, marked final", async () => {
  await visit(admin, `#/accounts/${a}`);
  const form = admin.locator("#as-of");
  // datetime-local, in the page's (UTC) time, to the second.
  await form.getByLabel(/Moment/).fill(beforeTransfer.toISOString().slice(0, 19));
  await form.getByRole("button", { name: "Show balance" }).click();
  const answer = form.locator('[data-final="true"]');
  await answer.waitFor({ timeout: SLOW_MS });
  assert.match(await answer.textContent(), /100\.00 USD.*final: this answer can never change/);
  await shot(admin, "08-as-of-final");
});

await scenario("the journal page checks a transfer's proof in the browser", async () => {
  const transfer = (await outgoing(a)).find((t) => t.amount === "30.00");
  await visit(admin, `#/journal/${transfer.id}`);
  // The proof exists once the transfer is final: the page may say "not
  // final yet" first; ask again until it verifies.
  const deadline = Date.now() + SLOW_MS;
  for (;;) {
    const verdict = admin.locator("#proof [data-verified], #proof .problem");
    await verdict.first().waitFor();
    if ((await admin.locator('#proof [data-verified="true"]').count()) === 1) break;
    assert.ok(Date.now() < deadline, `not verified: ${await verdict.first().textContent()}`);
    await sleep(500);
    await admin.locator("#proof").getByRole("button", { name: "Check" }).click();
  }
  // The check is the page's own: a proof with one changed byte fails it.
  const tampered = await admin.evaluate(async ([id, key]) => {
    const { checkProof } = await import("/console/journal.js");
    const response = await fetch(`/transfers/${id}/proof`, { headers: { Authorization: `Bearer ${key}` } });
    const proof = await response.json();
    const honest = (await checkProof(proof)).verified;
    const changed = { ...proof, encoding: proof.encoding.replace("30.00", "31.00") };
    return { honest, changed: (await checkProof(changed)).verified, edited: changed.encoding !== proof.encoding };
  }, [transfer.id, ADMIN_KEY]);
  assert.deepEqual(tampered, { honest: true, changed: false, edited: true });
  await shot(admin, "09-journal-proof");
});

await scenario("search by id and by metadata", async () => {
  await visit(admin, `#/accounts`);
  await admin.getByLabel("Account id").fill(b);
  await admin.getByRole("button", { name: "Open", exact: true }).click();
  await admin.getByRole("heading", { name: /Account/, level: 1 }).waitFor();
  assert.ok(admin.url().endsWith(`#/accounts/${b}`));
  if (!HAS.metadataFilter) return "metadata search SKIPPED: GET /accounts has no metadata filter in this ledger's API document";
  await visit(admin, `#/accounts`);
  await admin.getByLabel("Metadata key").fill("owner");
  await admin.getByLabel("equals").fill("alice");
  await admin.getByRole("button", { name: "Search" }).click();
  await admin.locator(`h2:has-text("owner") + .list tr[data-id="${a}"]`).waitFor();
  assert.equal(await admin.locator(`h2:has-text("owner") + .list tr[data-id="${b}"]`).count(), 0);
  await shot(admin, "10-search");
});

await scenario("a read-only key cannot see the send form", async () => {
  const reader = await newPage();
  await signIn(reader, READ_KEY);
  await visit(reader, `#/accounts/${a}`);
  await expectFigure(reader, "balance", "67.50 USD");
  await reader.locator("#history tbody tr").first().waitFor();
  assert.equal(await reader.locator('form[data-kind="transfer"]').count(), 0);
  assert.equal(await reader.locator("#open-account").count(), 0);
  assert.ok(await reader.locator("#nav-move").isHidden(), "no Move money link");
  await shot(reader, "11-read-only-account");
  await visit(reader, `#/move`);
  await reader.getByText("This key can only read").waitFor();
  assert.equal(await reader.locator("form.payment").count(), 0);
  await shot(reader, "12-read-only-move");
  await reader.context().close();
});

await scenario("a 403 is explained, naming the key's scope", async () => {
  const reader = await newPage();
  await signIn(reader, READ_KEY);
  // The console hides what a read key may not do; this asks the ledger
  // anyway, through the console's own code, to see a real 403 explained.
  const explained = await reader.evaluate(async ([source, destination]) => {
    const { call, explain } = await import("/console/api.js");
    try {
      await call("POST", "/transfers", { body: { source, destination, amount: "1.00" }, idempotencyKey: crypto.randomUUID() });
      return null;
    } catch (problem) {
      return { status: problem.status, ...explain(problem) };
    }
  }, [a, b]);
  assert.equal(explained?.status, 403);
  assert.match(explained.headline, /scope “read”.*not allowed/);
  assert.match(explained.requestId ?? "", /^[0-9a-f-]{36}$/);
  assert.equal(await balanceOf(a), "67.50");
  await reader.context().close();
});

await scenario("statement CSV for a time range", async () => {
  const from = new Date(beforeTransfer.getTime() - 60_000);
  // A whole second already final: statements are read from the final log.
  const to = new Date(Math.floor(Date.now() / 1000) * 1000);
  await sleep(1500);
  if (!HAS.statements) return "SKIPPED: no GET /accounts/{id}/statement in this ledger's API document";
  await visit(admin, `#/accounts/${a}`);
  const form = admin.locator("form", { has: admin.getByRole("heading", { name: "Statement (CSV)" }) });
  await form.getByLabel(/^From/).fill(from.toISOString().slice(0, 19));
  await form.getByLabel(/^To/).fill(to.toISOString().slice(0, 19));
  const [download] = await Promise.all([
    admin.waitForEvent("download", { timeout: SLOW_MS }),
    form.getByRole("button", { name: "Download CSV" }).click(),
  ]);
  const csv = readFileSync(await download.path(), "utf8");
  assert.match(download.suggestedFilename(), /^statement-.*\.csv$/);
  assert.match(csv, /30\.00/, "the 30.00 transfer is in the statement");
  assert.match(csv, /1\.25/);
  await shot(admin, "13-statement");
  return `${csv.split("\n").length} lines`;
});

await scenario("hold, then capture", async () => {
  if (!HAS.holds) return "SKIPPED: no holds in this ledger's API document";
  await visit(admin, `#/move/hold/${a}`);
  const form = admin.locator('form[data-kind="hold"]');
  assert.equal(await form.getByLabel("From account").inputValue(), a);
  await form.getByLabel("To account").fill(b);
  await form.getByLabel("Amount").fill("10.00");
  await form.getByRole("button", { name: "Place hold" }).click();
  const placed = form.locator(".ok[data-id]");
  await placed.waitFor();
  const holdId = await placed.getAttribute("data-id");
  await visit(admin, `#/accounts/${a}`);
  await expectFigure(admin, "held", "10.00 USD");
  await expectFigure(admin, "available", "57.50 USD");
  await expectFigure(admin, "balance", "67.50 USD");
  const row = admin.locator(`#holds tr[data-id="${holdId}"]`);
  await row.waitFor();
  await shot(admin, "14-hold-pending");
  await row.getByRole("button", { name: "Capture" }).click();
  await expectFigure(admin, "balance", "57.50 USD");
  await expectFigure(admin, "held", "0.00 USD");
  assert.equal((await api("GET", `/holds/${holdId}`)).body.status, "captured");
  assert.equal(await balanceOf(b), "47.50");
  await shot(admin, "15-hold-captured");

  // A second hold, voided: the money is available again, nothing moved.
  await visit(admin, `#/move/hold/${a}`);
  await form.getByLabel("To account").fill(b);
  await form.getByLabel("Amount").fill("2");
  await form.getByRole("button", { name: "Place hold" }).click();
  await form.locator(".ok[data-id]").waitFor();
  const voidedId = await form.locator(".ok[data-id]").getAttribute("data-id");
  await visit(admin, `#/accounts/${a}`);
  await expectFigure(admin, "held", "2.00 USD");
  await admin.locator(`#holds tr[data-id="${voidedId}"]`).getByRole("button", { name: "Void" }).click();
  await expectFigure(admin, "held", "0.00 USD");
  await expectFigure(admin, "available", "57.50 USD");
  assert.equal((await api("GET", `/holds/${voidedId}`)).body.status, "voided");
  assert.equal(await balanceOf(a), "57.50");
});

await scenario("reversal of part of a transfer", async () => {
  const transfer = (await outgoing(a)).find((t) => t.amount === "30.00");
  if (!HAS.reversals) return "SKIPPED: no POST /transfers/{id}/reversals in this ledger's API document";
  const [aBefore, bBefore] = [await balanceOf(a), await balanceOf(b)];
  await visit(admin, `#/move/reversal/${transfer.id}`);
  const form = admin.locator('form[data-kind="reversal"]');
  assert.equal(await form.getByLabel("Transfer id").inputValue(), transfer.id);
  await form.getByLabel(/^Amount/).fill("5");
  await form.getByRole("button", { name: "Reverse" }).click();
  await form.locator(".ok[data-id]").waitFor();
  assert.equal((await api("GET", `/transfers/${transfer.id}`)).body.reversed_amount, "5.00");
  const cents = (text) => Math.round(Number(text) * 100);
  assert.equal(cents(await balanceOf(a)) - cents(aBefore), 500);
  assert.equal(cents(bBefore) - cents(await balanceOf(b)), 500);
  await shot(admin, "16-reversal");
});

await scenario("an overdraft line: opened with one, spent below zero, then changed", async () => {
  if (!HAS.overdraft) return "SKIPPED: no overdraft lines in this ledger's API document";
  await visit(admin, "#/accounts");
  const open = admin.locator("#open-account");
  await open.getByLabel("Initial balance").fill("1");
  await open.getByLabel("Overdraft line").fill("20");
  await open.getByRole("button", { name: "Open account" }).click();
  await open.locator(".ok[data-id]").waitFor();
  const c = await open.locator(".ok[data-id]").getAttribute("data-id");
  assert.equal((await api("GET", `/accounts/${c}`)).body.overdraft_limit, "20.00");
  await visit(admin, `#/accounts/${c}`);
  await expectFigure(admin, "overdraft", "20.00 USD");
  const send = admin.locator('form[data-kind="transfer"]');
  await send.getByLabel("To account").fill(b);
  await send.getByLabel("Amount").fill("15.50");
  await send.getByRole("button", { name: "Send" }).click();
  await expectFigure(admin, "balance", "−14.50 USD");
  // The line cannot go below what the account owes: refused, in plain words.
  const line = admin.locator("#overdraft");
  await line.getByLabel(/below zero/).fill("10");
  await line.getByRole("button", { name: "Set overdraft line" }).click();
  await line.locator(".problem", { hasText: "cannot go below what the account already owes" }).waitFor();
  await line.getByLabel(/below zero/).fill("30");
  await line.getByRole("button", { name: "Set overdraft line" }).click();
  await expectFigure(admin, "overdraft", "30.00 USD");
  assert.equal((await api("GET", `/accounts/${c}`)).body.overdraft_limit, "30.00");
  await shot(admin, "17-overdraft");
});

await scenario("the account page is usable 360 px wide", async () => {
  const narrow = await newPage({ width: 360, height: 780 });
  await signIn(narrow, ADMIN_KEY);
  await visit(narrow, `#/accounts/${a}`);
  await narrow.locator("#history tbody tr").first().waitFor();
  await narrow.locator('[data-figure="balance"]').waitFor();
  // Nothing wider than the screen: no sideways scrolling.
  const widths = await narrow.evaluate(() => ({ page: document.documentElement.scrollWidth, screen: innerWidth }));
  assert.ok(widths.page <= widths.screen, `page ${widths.page} px wide on a ${widths.screen} px screen`);
  // The send form is there and reachable with the keyboard alone.
  const amount = narrow.locator('form[data-kind="transfer"]').getByLabel("Amount");
  await amount.focus();
  await narrow.keyboard.press("Tab");
  await narrow.keyboard.press("Tab");
  assert.equal(await narrow.evaluate(() => document.activeElement?.textContent), "Send");
  await shot(narrow, "18-account-360px");
  await narrow.context().close();
});

await shot(admin, "19-account-desktop");
await browser.close();

await scenario("no request left the service's origin, and no script failed", async () => {
  const outside = requests.filter((url) => !url.startsWith("data:") && url !== "about:blank" && new URL(url).origin !== ORIGIN);
  assert.deepEqual(outside, [], "requests to other origins");
  assert.ok(requests.length > 20, `requests were recorded (${requests.length})`);
  assert.deepEqual(pageErrors, [], "errors in the pages");
  return `${requests.length} requests, all to ${ORIGIN}`;
});

const failed = results.filter((result) => !result.ok);
const skipped = results.filter((result) => result.note.includes("SKIPPED"));
console.log(`\n${results.length - failed.length} of ${results.length} scenarios passed (${skipped.length} in part skipped) in ${((Date.now() - runStarted) / 1000).toFixed(1)} s; screenshots in ${SHOTS}`);
process.exit(failed.length === 0 ? 0 : 1);
