//! Cursor pages for the API's lists (`GET /v1/nodes`, `GET /v1/instances`): at most `limit` rows
//! after the `after` id, in id order, and a `Link: <...>; rel="next"` header while more follow,
//! carrying the list's filters.

use axum::http::HeaderValue;

use super::error::ApiError;

/// The most rows one page holds.
pub const MAX_PAGE: i64 = 1000;

/// A page request checked: `limit` 1-1000 when given, `after` not negative.
pub fn check(limit: Option<i64>, after: Option<i64>) -> Result<Option<i64>, ApiError> {
    if let Some(l) = limit.filter(|l| !(1..=MAX_PAGE).contains(l)) {
        return Err(ApiError::BadRequest(format!("limit must be 1-{MAX_PAGE}, got {l}")));
    }
    if let Some(a) = after.filter(|a| *a < 0) {
        return Err(ApiError::BadRequest(format!("after must not be negative, got {a}")));
    }
    Ok(limit)
}

/// Cuts `rows` (read with one more than `limit`) to the page, and returns the id the next page
/// starts after, when there is one.
pub fn cut<T>(rows: &mut Vec<T>, limit: Option<i64>, id: impl Fn(&T) -> i64) -> Option<i64> {
    let limit = usize::try_from(limit?).ok()?;
    if rows.len() <= limit {
        return None;
    }
    rows.truncate(limit);
    rows.last().map(id)
}

/// The `Link` header naming the next page of `path`, with the list's filters.
pub fn next_link(path: &str, limit: i64, after: i64, filters: &[(&str, Option<String>)]) -> Option<HeaderValue> {
    let mut link = format!("{path}?limit={limit}&after={after}");
    for (key, value) in filters {
        if let Some(v) = value {
            link.push_str(&format!("&{key}={}", encode(v)));
        }
    }
    HeaderValue::from_str(&format!("<{link}>; rel=\"next\"")).ok()
}

/// A query value as a URL carries it: unreserved characters as they are, the rest %-encoded.
fn encode(value: &str) -> String {
    value.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_cut_and_names_the_next_with_its_filters() {
        let mut rows = vec![1, 2, 3, 4];
        assert_eq!(cut(&mut rows, Some(3), |r| *r), Some(3));
        assert_eq!(rows, [1, 2, 3]);
        assert_eq!(cut(&mut rows, Some(3), |r| *r), None);
        let link = next_link("/v1/nodes", 3, 3, &[("q", Some("a b&c".into())), ("state", None)]).expect("header");
        assert_eq!(link, "</v1/nodes?limit=3&after=3&q=a%20b%26c>; rel=\"next\"");
        assert!(check(Some(0), None).is_err() && check(Some(1001), None).is_err() && check(None, Some(-1)).is_err());
        assert_eq!(check(Some(5), Some(0)).ok(), Some(Some(5)));
    }
}
