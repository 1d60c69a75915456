// Exact amounts. An amount is a decimal string from start to end: it is
// checked and padded as text, never turned into a floating-point number,
// so what the person typed is what the ledger receives.

let decimals = null;

/** Loads the decimals of every currency (generated from the ledger's own table). */
export async function loadCurrencies() {
  if (decimals) return decimals;
  const response = await fetch("currencies.json", { credentials: "omit" });
  decimals = await response.json();
  return decimals;
}

export function currencies() {
  return Object.keys(decimals ?? { USD: 2 }).sort();
}

/** How many decimals an amount in `currency` has (2 when unknown). */
export function scaleOf(currency) {
  return decimals?.[currency] ?? 2;
}

/**
 * Parses what a person typed into an amount of `currency`: digits, at most
 * one point, at most the currency's decimals; greater than zero unless
 * `allowZero`. Returns {amount} (a string, padded to the currency's
 * decimals) or {error} in plain words.
 */
export function parseAmount(text, currency, { allowZero = false } = {}) {
  const input = text.trim().replace(/_/g, "");
  const scale = scaleOf(currency);
  const match = /^(\d+)(?:\.(\d*))?$/.exec(input);
  if (!match) {
    return { error: `Write the amount as digits with a point for decimals, e.g. ${example(scale)}.` };
  }
  const [, whole, fraction = ""] = match;
  if (fraction.length > scale) {
    return {
      error: scale === 0
        ? `${currency} has no decimals: write a whole number.`
        : `${currency} has ${scale} decimals at most.`,
    };
  }
  const wholeDigits = whole.replace(/^0+(?=\d)/, "");
  const amount = scale === 0 ? wholeDigits : `${wholeDigits}.${fraction.padEnd(scale, "0")}`;
  if (!allowZero && /^[0.]+$/.test(amount)) return { error: "The amount must be greater than zero." };
  return { amount };
}

function example(scale) {
  return scale === 0 ? "125" : `125.${"5".padEnd(scale, "0")}`;
}

/** An amount from the ledger, shown with its currency's decimals and code. */
export function format(amount, currency) {
  if (amount === null || amount === undefined) return "—";
  const scale = scaleOf(currency);
  const negative = amount.startsWith("-");
  const [whole, fraction = ""] = (negative ? amount.slice(1) : amount).split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, " ");
  const digits = scale === 0 ? grouped : `${grouped}.${fraction.padEnd(scale, "0").slice(0, Math.max(scale, fraction.replace(/0+$/, "").length))}`;
  return `${negative ? "−" : ""}${digits} ${currency}`;
}
