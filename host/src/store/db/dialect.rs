//! The one dialect difference the store's SQL leaves to the connection: PostgreSQL numbers its
//! placeholders `$N` where the shared text says `?N`.

/// `?N` becomes `$N` and a bare `?` the next number, outside quoted text.
pub fn to_postgres_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut in_quote = false;
    let mut next = 1;
    while let Some(c) = chars.next() {
        if c == '\'' {
            in_quote = !in_quote;
            out.push(c);
        } else if c == '?' && !in_quote {
            out.push('$');
            let mut digits = String::new();
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                digits.push(d);
                chars.next();
            }
            if digits.is_empty() {
                out.push_str(&next.to_string());
                next += 1;
            } else {
                out.push_str(&digits);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_numbered_dollars_outside_quotes() {
        assert_eq!(to_postgres_placeholders("UPDATE t SET a = ?2 WHERE id = ?1 AND b = '?'"), "UPDATE t SET a = $2 WHERE id = $1 AND b = '?'");
        assert_eq!(to_postgres_placeholders("VALUES (?, ?, ?15)"), "VALUES ($1, $2, $15)");
    }
}
