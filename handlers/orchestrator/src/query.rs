//! Query parameters shared by the list endpoints: paging, ordering, and
//! RFC 3339 timestamps, each rejected with a validation error naming it.

use crate::errors::OrchError;
use baton_sdk::Request;
use serde_json::json;

/// `limit`, `offset`, `order_by`, `order` of a list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paging {
    /// At most this many items (`None`: all).
    pub limit: Option<usize>,
    /// Items skipped first.
    pub offset: usize,
    /// The field to sort by.
    pub order_by: String,
    /// Descending instead of ascending.
    pub desc: bool,
}

impl Paging {
    /// Reads the paging parameters of `req`; `order_by` must be one of
    /// `fields` (the first is the default).
    pub fn from_request(req: &Request, fields: &[&str]) -> Result<Paging, OrchError> {
        let limit = match req.query_param("limit") {
            None => None,
            Some(v) => Some(number("limit", &v)?),
        };
        let offset = match req.query_param("offset") {
            None => 0,
            Some(v) => number("offset", &v)?,
        };
        let order_by = req
            .query_param("order_by")
            .unwrap_or_else(|| fields[0].to_string());
        if !fields.contains(&order_by.as_str()) {
            return Err(OrchError::validation(format!(
                "`order_by` must be one of {}, not `{order_by}`",
                fields.join(", ")
            ))
            .details(json!({ "field": "order_by", "value": order_by, "allowed": fields })));
        }
        let desc = match req.query_param("order").as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(OrchError::validation(format!(
                    "`order` must be `asc` or `desc`, not `{other}`"
                ))
                .details(json!({ "field": "order", "value": other })));
            }
        };
        Ok(Paging {
            limit,
            offset,
            order_by,
            desc,
        })
    }

    /// The page of `items` (already sorted ascending) and the total.
    pub fn page<T>(&self, mut items: Vec<T>) -> (Vec<T>, usize) {
        if self.desc {
            items.reverse();
        }
        let total = items.len();
        let page = items
            .into_iter()
            .skip(self.offset)
            .take(self.limit.unwrap_or(usize::MAX))
            .collect();
        (page, total)
    }
}

/// A non-negative integer query parameter. One too large for `usize`
/// (32 bits in the guest) counts as `usize::MAX`: a limit past every item,
/// an offset past the end.
pub fn number(field: &str, value: &str) -> Result<usize, OrchError> {
    Ok(usize::try_from(number_u64(field, value)?).unwrap_or(usize::MAX))
}

/// A non-negative integer query parameter as a `u64` (`u64::MAX` when larger).
pub fn number_u64(field: &str, value: &str) -> Result<u64, OrchError> {
    let digits = value.strip_prefix('+').unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OrchError::validation(format!(
            "`{field}` must be a non-negative integer, not `{value}`"
        ))
        .details(json!({ "field": field, "value": value })));
    }
    Ok(digits.parse::<u64>().unwrap_or(u64::MAX))
}

/// Parses an RFC 3339 timestamp (`2026-11-23T19:04:05Z`, fractions and
/// `±hh:mm` offsets allowed) into milliseconds since the epoch (negative
/// before 1970: a valid timestamp, which every job's finish follows).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo)
        || !(1..=days_in_month(y, mo)).contains(&d)
        || h > 23
        || mi > 59
        || sec > 60
    {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let ms: String = frac[..digits]
            .chars()
            .chain("000".chars())
            .take(3)
            .collect();
        millis = ms.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = rest[1..3].parse().ok()?;
            let om: i64 = rest[4..6].parse().ok()?;
            sign * (oh * 60 + om)
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Some(secs * 1000 + millis)
}

/// Days in month `m` (1-12) of year `y` (proleptic Gregorian).
fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's civil-to-days algorithm (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A timestamp query parameter, if given.
pub fn timestamp(req: &Request, field: &str) -> Result<Option<i64>, OrchError> {
    match req.query_param(field) {
        None => Ok(None),
        Some(v) => parse_rfc3339(&v).map(Some).ok_or_else(|| {
            OrchError::validation(format!(
                "`{field}` must be an RFC 3339 timestamp such as 2026-11-23T19:04:05Z, not `{v}`"
            ))
            .details(json!({ "field": field, "value": v }))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_sdk::time::rfc3339;

    #[test]
    fn timestamps_round_trip_with_the_sdk_formatter() {
        for ms in [0, 951_782_400_000, 1_795_460_645_123] {
            assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms as i64));
        }
        // Before the epoch is a timestamp too (a filter every job passes).
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), Some(-1000));
        assert_eq!(
            parse_rfc3339("0001-01-01T00:00:00Z"),
            Some(-62_135_596_800_000)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-23T20:04:05+01:00"),
            parse_rfc3339("2026-11-23T19:04:05Z")
        );
        assert_eq!(
            parse_rfc3339("2026-11-23T19:04:05.5Z"),
            Some(1_795_460_645_500)
        );
        for bad in [
            "",
            "2026-11-23",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-23T19:04:05",
            "x026-11-23T19:04:05Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn paging_reads_and_checks_parameters() {
        let req = Request::new("GET", "/jobs").with_query("limit=2&offset=1&order=desc");
        let p = Paging::from_request(&req, &["name", "state"]).unwrap();
        assert_eq!(p.order_by, "name");
        assert_eq!(p.page(vec![1, 2, 3, 4]), (vec![3, 2], 4));
        // Past `usize` (32 bits in the guest) is still a number: the most.
        let req = Request::new("GET", "/jobs")
            .with_query("limit=187760971602245451776&offset=187760971602245451776");
        let p = Paging::from_request(&req, &["name"]).unwrap();
        assert_eq!((p.limit, p.offset), (Some(usize::MAX), usize::MAX));
        assert_eq!(p.page(vec![1, 2]), (vec![], 2));
        assert!(number("limit", "4294967296").unwrap() >= u32::MAX as usize);
        assert_eq!(number("limit", "+7").unwrap(), 7);
        for q in [
            "limit=-1",
            "offset=x",
            "order=up",
            "order_by=colour",
            "limit=",
            "limit=0.5",
            "limit=+",
        ] {
            let req = Request::new("GET", "/jobs").with_query(q);
            assert!(Paging::from_request(&req, &["name"]).is_err(), "{q}");
        }
    }
}
