use std::fmt;

use rust_decimal::Decimal;

use crate::{Currency, DomainError};

/// The largest amount a single transfer may move: 10^15 units of any
/// currency. It keeps every running total far inside `rust_decimal`'s 96-bit
/// range; `sql/V1` enforces the same bound.
pub const MAX_AMOUNT: Decimal = {
    const MAX: u64 = 10_u64.pow(15);
    // 10^15 as a 96-bit mantissa's low and middle words, scale 0.
    Decimal::from_parts(MAX as u32, (MAX >> 32) as u32, 0, false, 0)
};

/// `rust_decimal` holds 28 significant digits exactly; longer text would be
/// rounded, so it is refused instead.
pub const MAX_SIGNIFICANT_DIGITS: usize = 28;

/// Why a text is not an amount in plain decimal notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecimalTextError {
    /// `1e3`, `-2.5E-2`: numbers JSON allows but amounts do not.
    Exponent,
    /// Anything but digits with an optional leading `-` and at most one `.`
    /// between digits: `NaN`, `+5`, `.5`, `5.`, `12,50`, spaces, empty.
    NotDecimal,
    /// More than [`MAX_SIGNIFICANT_DIGITS`].
    TooManyDigits,
}

/// Reads an amount written in plain decimal notation, exactly and without a
/// float step: the one parser for every amount the ledger is given. Trailing
/// zeros carry no value and are dropped (`1.000…0` with 40 zeros is 1), so
/// only significant digits count against the limit.
pub fn parse_decimal_text(text: &str) -> Result<Decimal, DecimalTextError> {
    let negative = text.starts_with('-');
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if looks_like_exponent_notation(text) {
        return Err(DecimalTextError::Exponent);
    }
    if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
        return Err(DecimalTextError::NotDecimal);
    }
    let whole = whole.trim_start_matches('0');
    let fraction = fraction.map_or("", |f| f.trim_end_matches('0'));
    if whole.len() + fraction.len() > MAX_SIGNIFICANT_DIGITS {
        return Err(DecimalTextError::TooManyDigits);
    }
    let sign = if negative { "-" } else { "" };
    let whole = if whole.is_empty() { "0" } else { whole };
    let trimmed = if fraction.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    };
    trimmed
        .parse::<Decimal>()
        .map_err(|_| DecimalTextError::NotDecimal)
}

/// `1e3`, `-2.5E-2`: exponent notation, named as such in the refusal.
fn looks_like_exponent_notation(text: &str) -> bool {
    let Some((mantissa, exponent)) = text.split_once(['e', 'E']) else {
        return false;
    };
    let mantissa = mantissa.strip_prefix('-').unwrap_or(mantissa);
    let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    !mantissa.is_empty()
        && mantissa.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && !exponent.is_empty()
        && exponent.bytes().all(|b| b.is_ascii_digit())
}

/// A positive amount of money in one currency, scaled to the currency's minor
/// units (`12.5` USD is held as `12.50`). Only [`Amount::new`] makes one, so
/// holding an `Amount` means every rule below has been checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amount {
    value: Decimal,
    currency: Currency,
}

impl Amount {
    /// Checks that `value` is positive, carries no more decimals than the
    /// currency allows (trailing zeros do not count: `1.500` USD is fine) and
    /// does not exceed [`MAX_AMOUNT`].
    pub fn new(value: Decimal, currency: Currency) -> Result<Self, DomainError> {
        if value <= Decimal::ZERO {
            return Err(DomainError::NonPositiveAmount);
        }
        if value > MAX_AMOUNT {
            return Err(DomainError::AmountTooLarge { max: MAX_AMOUNT });
        }
        let normalized = value.normalize();
        if normalized.scale() > currency.minor_units() {
            return Err(DomainError::BadScale {
                currency: currency.code(),
                max_decimals: currency.minor_units(),
            });
        }
        let mut value = normalized;
        value.rescale(currency.minor_units());
        Ok(Self { value, currency })
    }

    /// A figure that may be zero (an overdraft line), checked and scaled
    /// like an amount.
    pub fn scale_non_negative(value: Decimal, currency: Currency) -> Result<Decimal, DomainError> {
        if value.is_zero() {
            let mut zero = Decimal::ZERO;
            zero.rescale(currency.minor_units());
            return Ok(zero);
        }
        Self::new(value, currency).map(|amount| amount.value)
    }

    /// The exact value, scaled to the currency's minor units.
    pub fn value(&self) -> Decimal {
        self.value
    }

    /// The currency of this amount.
    pub fn currency(&self) -> Currency {
        self.currency
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.value, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).expect("valid decimal literal")
    }

    fn usd() -> Currency {
        Currency::parse("USD").expect("USD")
    }

    #[test]
    fn max_amount_is_ten_to_the_fifteenth() {
        assert_eq!(MAX_AMOUNT, dec("1000000000000000"));
    }

    #[test]
    fn amounts_are_rescaled_to_the_currency() {
        let amount = Amount::new(dec("12.5"), usd()).expect("valid");
        assert_eq!(amount.value().to_string(), "12.50");
        let yen = Currency::parse("JPY").expect("JPY");
        assert_eq!(
            Amount::new(dec("100"), yen)
                .expect("valid")
                .value()
                .to_string(),
            "100"
        );
    }

    #[test]
    fn trailing_zeros_beyond_the_scale_are_accepted() {
        assert_eq!(
            Amount::new(dec("1.500"), usd()).expect("valid").value(),
            dec("1.50")
        );
    }

    #[test]
    fn bad_amounts_are_rejected_with_the_reason() {
        let cases = [
            ("0", DomainError::NonPositiveAmount, "zero moves nothing"),
            (
                "-0",
                DomainError::NonPositiveAmount,
                "negative zero is zero",
            ),
            ("-1.00", DomainError::NonPositiveAmount, "negative"),
            (
                "0.001",
                DomainError::BadScale {
                    currency: "USD",
                    max_decimals: 2,
                },
                "a tenth of a cent",
            ),
            (
                "1000000000000000.01",
                DomainError::AmountTooLarge { max: MAX_AMOUNT },
                "above the ceiling",
            ),
        ];
        for (input, expected, why) in cases {
            assert_eq!(Amount::new(dec(input), usd()), Err(expected), "{why}");
        }
    }

    #[test]
    fn ten_tenths_make_exactly_one() {
        let tenth = Amount::new(dec("0.1"), usd()).expect("valid");
        let total: Decimal = (0..10).map(|_| tenth.value()).sum();
        assert_eq!(total, Decimal::ONE);
    }

    #[test]
    fn decimal_text_is_read_exactly() {
        for (text, expected) in [
            ("10", "10"),
            ("10.00", "10"),
            ("0.1", "0.1"),
            ("-5", "-5"),
            (
                "0.30000000000000000000000001",
                "0.30000000000000000000000001",
            ),
            ("1.0000000000000000000000000000000000000000", "1"),
            ("1000000000000000", "1000000000000000"),
        ] {
            assert_eq!(parse_decimal_text(text), Ok(dec(expected)), "{text}");
        }
    }

    #[test]
    fn decimal_text_that_is_not_plain_notation_is_refused_with_the_reason() {
        use DecimalTextError::{Exponent, NotDecimal, TooManyDigits};
        for (text, reason, why) in [
            ("", NotDecimal, "an empty string is no number"),
            (" 10", NotDecimal, "whitespace is not part of a number"),
            ("NaN", NotDecimal, "NaN is not an amount"),
            ("Infinity", NotDecimal, "infinity is not an amount"),
            ("1e3", Exponent, "exponent notation is refused"),
            (
                "-2.5E-2",
                Exponent,
                "with a sign and a negative exponent too",
            ),
            ("+5", NotDecimal, "only a leading minus is accepted"),
            ("1_000", NotDecimal, "no digit separators"),
            (".5", NotDecimal, "a digit must precede the point"),
            ("5.", NotDecimal, "a digit must follow the point"),
            ("12,50", NotDecimal, "a comma is not a decimal point"),
            ("12345678901234567890123456789", TooManyDigits, "29 digits"),
        ] {
            assert_eq!(parse_decimal_text(text), Err(reason), "{why}");
        }
    }
}
