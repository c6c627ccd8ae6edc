//! The page frame (head, navigation, sign-out) and the small formatters every page shares.
//! Values go through maud's `(...)`, which escapes them; nothing here builds HTML by hand.

use maud::{DOCTYPE, Markup, html};

/// Which navigation entry is current.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Pool,
    Instances,
    Images,
    Plugins,
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · metalhost" }
            link rel="stylesheet" href="/ui/assets/ui.css";
            script src="/ui/assets/ui.js" defer {}
        }
    }
}

/// A page for a signed-in operator.
pub fn shell(title: &str, nav: Nav, body: Markup) -> Markup {
    let entry = |to: Nav, href: &str, label: &str| {
        html! { a href=(href) aria-current=[(to == nav).then_some("page")] { (label) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top {
                    a.brand href="/ui" { "metalhost" }
                    nav {
                        (entry(Nav::Pool, "/ui", "Pool"))
                        (entry(Nav::Instances, "/ui/instances", "Instances"))
                        (entry(Nav::Images, "/ui/images", "Images"))
                        (entry(Nav::Plugins, "/ui/plugins", "Plugins"))
                    }
                    form.signout method="post" action="/ui/logout" { button type="submit" { "Sign out" } }
                }
                main { (body) }
            }
        }
    }
}

/// A page outside the session (sign-in).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body { main { (body) } }
        }
    }
}

/// A state name as a badge whose colour comes from its class.
pub fn badge(text: &str) -> Markup {
    html! { span class={ "badge s-" (text) } { (text) } }
}

/// Unix milliseconds as UTC, `2026-12-01 03:18:23` (the page cannot know the reader's zone).
pub fn utc(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_else(|_| ms.to_string())
}

/// A duration in the unit that reads best.
pub fn duration(ms: i64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1000)
    }
}

pub fn bytes(n: u64) -> String {
    const MIB: f64 = (1u64 << 20) as f64;
    if n < 1 << 20 { format!("{n} B") } else { format!("{:.1} MiB", n as f64 / MIB) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_796_095_103_000), "2026-12-01 03:18:23");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(duration(250), "250 ms");
        assert_eq!(duration(1_500), "1.5 s");
        assert_eq!(duration(125_000), "2m05s");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
    }

    #[test]
    fn values_are_escaped() {
        let page = shell("<b>", Nav::Pool, badge("<script>alert(1)</script>")).into_string();
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("<title>&lt;b&gt; · metalhost</title>"));
    }
}
