//! Cursor pages for the API's lists: at most `limit` rows past a cursor id, and a
//! `Link: <...>; rel="next"` header while more follow, carrying the list's filters. Lists in id
//! order (`GET /v1/nodes`, `/v1/instances`, `/v1/nodes/{id}/events`) go on `after` the last id
//! shown; newest-first ones (`GET /v1/audit`) go on `before` it.

use axum::http::HeaderValue;

use super::error::ApiError;

/// The most rows one page holds.
pub const MAX_PAGE: i64 = 1000;

/// Which way a list runs, and so which cursor its next page carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Oldest (smallest id) first; the next page is `after` the last id.
    Ascending,
    /// Newest (largest id) first; the next page is `before` the last id.
    NewestFirst,
}

impl Order {
    /// The query parameter that carries the cursor.
    pub fn cursor(self) -> &'static str {
        match self {
            Order::Ascending => "after",
            Order::NewestFirst => "before",
        }
    }
}

/// A page request checked: `limit` 1-1000 when given, the cursor not negative.
pub fn check(limit: Option<i64>, cursor: Option<i64>, order: Order) -> Result<Option<i64>, ApiError> {
    if let Some(l) = limit.filter(|l| !(1..=MAX_PAGE).contains(l)) {
        return Err(ApiError::BadRequest(format!("limit must be 1-{MAX_PAGE}, got {l}")));
    }
    if let Some(c) = cursor.filter(|c| *c < 0) {
        return Err(ApiError::BadRequest(format!("{} must not be negative, got {c}", order.cursor())));
    }
    Ok(limit)
}

/// Cuts `rows` (read with one more than `limit`) to the page, and returns the id the next page
/// starts from, when there is one.
pub fn cut<T>(rows: &mut Vec<T>, limit: Option<i64>, id: impl Fn(&T) -> i64) -> Option<i64> {
    let limit = usize::try_from(limit?).ok()?;
    if rows.len() <= limit {
        return None;
    }
    rows.truncate(limit);
    rows.last().map(id)
}

/// The `Link` header naming the next page of `path`, from `cursor` on, with the list's filters.
pub fn next_link(path: &str, limit: i64, order: Order, cursor: i64, filters: &[(&str, Option<String>)]) -> Option<HeaderValue> {
    let mut link = format!("{path}?limit={limit}&{}={cursor}", order.cursor());
    for (key, value) in filters {
        if let Some(v) = value {
            link.push_str(&format!("&{key}={}", encode(v)));
        }
    }
    HeaderValue::from_str(&format!("<{link}>; rel=\"next\"")).ok()
}

/// Puts the next page's `Link` on `response` when a page was cut short (`next` is its cursor).
pub fn link_next(
    response: &mut axum::response::Response,
    path: &str,
    limit: Option<i64>,
    order: Order,
    next: Option<i64>,
    filters: &[(&str, Option<String>)],
) {
    if let (Some(limit), Some(cursor)) = (limit, next)
        && let Some(link) = next_link(path, limit, order, cursor, filters)
    {
        response.headers_mut().insert(axum::http::header::LINK, link);
    }
}

/// A query value as a URL carries it: unreserved characters as they are, the rest %-encoded.
pub fn encode(value: &str) -> String {
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
        let link = next_link("/v1/nodes", 3, Order::Ascending, 3, &[("q", Some("a b&c".into())), ("state", None)]).expect("header");
        assert_eq!(link, "</v1/nodes?limit=3&after=3&q=a%20b%26c>; rel=\"next\"");
        let link = next_link("/v1/audit", 2, Order::NewestFirst, 40, &[("action", Some("delete".into()))]).expect("header");
        assert_eq!(link, "</v1/audit?limit=2&before=40&action=delete>; rel=\"next\"");
        assert!(check(Some(0), None, Order::Ascending).is_err() && check(Some(1001), None, Order::Ascending).is_err());
        assert!(check(None, Some(-1), Order::NewestFirst).is_err_and(|e| e.to_string().contains("before")));
        assert_eq!(check(Some(5), Some(0), Order::Ascending).ok(), Some(Some(5)));
    }
}
