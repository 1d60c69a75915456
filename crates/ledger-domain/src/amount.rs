use std::fmt;

use rust_decimal::Decimal;

use crate::{Currency, DomainError};

/// The largest amount a single transfer may move: 10^15 units of any
/// currency. It keeps every running total far inside `rust_decimal`'s 96-bit
/// range; `sql/V1` enforces the same bound.
pub const MAX_AMOUNT: Decimal = Decimal::from_parts(0xA4C6_8000, 0x0003_8D7E, 0, false, 0);

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
}
