//! The web view at `/ui`: sessions and headers over plain HTTP, then real headless Chromium
//! signing in, creating an instance through the confirmation page and watching the process-agent
//! lab's deploy change state on the node page. Screenshots go to `target/test-artifacts/web_ui/`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use metalhost_tests::browser::Browser;
use metalhost_tests::daemon::{Daemon, TOKEN};
use metalhost_tests::deploy_lab::{DeployLab, Options, image};
use metalhost_tests::paths;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE};
use serde_json::json;

fn artifacts() -> PathBuf {
    paths::target_dir().join("test-artifacts/web_ui")
}

fn no_redirects(daemon: &Daemon) -> reqwest::Client {
    daemon.http_client_builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_need_a_session_that_only_the_token_opens() {
    let daemon = Daemon::start();
    let http = no_redirects(&daemon);
    let origin = daemon.url.clone();

    let r = http.get(format!("{}/ui", daemon.url)).send().await.expect("get");
    assert_eq!((r.status(), r.headers()[LOCATION].to_str().ok()), (StatusCode::SEE_OTHER, Some("/ui/login")));
    // The bearer token does not open pages, and a page session does not open the API.
    let r = http.get(format!("{}/ui", daemon.url)).bearer_auth(TOKEN).send().await.expect("get");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    let wrong = http.post(format!("{}/ui/login", daemon.url)).header("origin", &origin).form(&[("token", "nope")]).send().await.expect("post");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(SET_COOKIE).is_none());
    let cross =
        http.post(format!("{}/ui/login", daemon.url)).header("origin", "http://evil.example").form(&[("token", TOKEN)]).send().await.expect("post");
    assert_eq!(cross.status(), StatusCode::FORBIDDEN, "a cross-site sign-in is refused");
    let bare = http.post(format!("{}/ui/login", daemon.url)).form(&[("token", TOKEN)]).send().await.expect("post");
    assert_eq!(bare.status(), StatusCode::FORBIDDEN, "a post that names no origin is refused");

    let ok = http.post(format!("{}/ui/login", daemon.url)).header("origin", &origin).form(&[("token", TOKEN)]).send().await.expect("post");
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let cookie = ok.headers()[SET_COOKIE].to_str().expect("ascii").to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!cookie.contains(TOKEN), "the cookie is a session id, not the token");
    let session = cookie.split(';').next().expect("pair").to_owned();

    let page = http.get(format!("{}/ui", daemon.url)).header("cookie", &session).send().await.expect("get");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()[CONTENT_SECURITY_POLICY].to_str().expect("csp").contains("script-src 'self'"));
    assert!(!page.text().await.expect("body").contains(TOKEN));
    let api = http.get(format!("{}/v1/nodes", daemon.url)).header("cookie", &session).send().await.expect("get");
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED, "the API takes the bearer token only");

    // Operators' and plugins' text is escaped: a node's BMC user name with markup in it (free
    // text; names and URLs cannot hold markup).
    let (status, switch) = daemon.post("/v1/switches", &metalhost_tests::daemon::switch_body("tor1", "pw")).await;
    assert_eq!(status, StatusCode::CREATED, "{switch}");
    let mut node = metalhost_tests::daemon::node_body(1, switch["id"].as_i64().expect("id"), "pw");
    node["bmc_username"] = json!("<script>alert(1)</script>");
    let (status, node) = daemon.post("/v1/nodes", &node).await;
    assert_eq!(status, StatusCode::CREATED, "{node}");
    let page = http.get(format!("{}/ui/nodes/node1", daemon.url)).header("cookie", &session).send().await.expect("get").text().await.expect("body");
    assert!(!page.contains("<script>alert(1)"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{page}");

    let out = http.post(format!("{}/ui/logout", daemon.url)).header("origin", &origin).header("cookie", &session).send().await.expect("post");
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let after = http.get(format!("{}/ui", daemon.url)).header("cookie", &session).send().await.expect("get");
    assert_eq!(after.status(), StatusCode::SEE_OTHER, "a signed-out session opens nothing");
}

/// Lists that scale in the web view (issue 33): the pool and the instances come 100 a page with a
/// link to the next, read by the API's own queries; the search and the state links keep each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_comes_a_page_at_a_time() {
    let daemon = Daemon::start();
    let http = no_redirects(&daemon);
    let (status, switch) = daemon.post("/v1/switches", &metalhost_tests::daemon::switch_body("tor1", "pw")).await;
    assert_eq!(status, StatusCode::CREATED, "{switch}");
    let sw = switch["id"].as_i64().expect("id");
    for i in 1..=105 {
        let (status, node) = daemon.post("/v1/nodes", &metalhost_tests::daemon::node_body(i, sw, "pw")).await;
        assert_eq!(status, StatusCode::CREATED, "{node}");
    }
    let ok = http.post(format!("{}/ui/login", daemon.url)).header("origin", &daemon.url).form(&[("token", TOKEN)]).send().await.expect("post");
    let session = ok.headers()[SET_COOKIE].to_str().expect("ascii").split(';').next().expect("pair").to_owned();
    let page = |path: String| {
        let (http, url, session) = (http.clone(), daemon.url.clone(), session.clone());
        async move {
            let r = http.get(format!("{url}{path}")).header("cookie", session).send().await.expect("get");
            let status = r.status();
            let body = r.text().await.expect("body");
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            body
        }
    };
    let names = |html: &str| -> Vec<String> {
        html.split("href=\"/ui/nodes/").skip(1).filter_map(|s| s.split_once('>')?.1.split('<').next().map(str::to_owned)).collect()
    };
    let next_of = |html: &str| html.split("rel=\"next\" href=\"").nth(1).and_then(|s| s.split('"').next()).map(|s| s.replace("&amp;", "&"));

    let first = page("/ui".into()).await;
    assert_eq!(names(&first), (1..=100).map(|i| format!("node{i}")).collect::<Vec<_>>());
    assert!(first.contains("all <span class=\"n\">105</span>"), "the counts are the whole pool's, not the page's");
    let next = next_of(&first).expect("a next link on a full page");
    assert!(next.starts_with("/ui?after="), "{next}");
    let second = page(next).await;
    assert_eq!(names(&second), (101..=105).map(|i| format!("node{i}")).collect::<Vec<_>>());
    assert!(next_of(&second).is_none() && second.contains("First page"), "the last page has no next");
    // The search, in the same query: node10 and node100-105 on one page, and kept by the state links.
    let found = page("/ui?q=NODE10".into()).await;
    assert_eq!(names(&found).len(), 7, "{:?}", names(&found));
    assert!(next_of(&found).is_none());
    assert!(found.contains("href=\"/ui?state=enrolled&amp;q=NODE10\""), "{found}");
    assert!(page("/ui?state=enrolled&q=NODE10".into()).await.contains("value=\"NODE10\""), "the form shows the search");

    // The instances likewise: 101 failed ones (`error`) planted (no node needed), a page of 100 and a next.
    daemon.exec_sql(
        "INSERT INTO images (id, name, url, sha256, compression, created_at) VALUES (1, 'os', 'http://127.0.0.1:9/os.img', '00', 'none', 0);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 101)
         INSERT INTO instances (name, image_id, state, created_at, updated_at) SELECT 'inst' || i, 1, 'error', 0, 0 FROM n;",
    );
    let rows = |html: &str| html.matches("action=\"/ui/instances/").count();
    let first = page("/ui/instances".into()).await;
    assert_eq!(rows(&first), 100);
    let next = next_of(&first).expect("a next link on a full page");
    assert!(next.starts_with("/ui/instances?after="), "{next}");
    let second = page(next).await;
    assert_eq!(rows(&second), 1);
    assert!(second.contains(">inst101<") && next_of(&second).is_none(), "{second}");
}

/// Every URL the browser was on and every page source it saw, checked for the token at the end.
#[derive(Default)]
struct Seen {
    urls: Vec<String>,
    sources: Vec<String>,
}

impl Seen {
    async fn record(&mut self, browser: &Browser) {
        self.urls.push(browser.url().await);
        self.sources.push(browser.source().await);
    }
}

/// The elements that reach past the right edge of the window, to say what overflows.
const WIDEST: &str = "return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 \
    && !e.closest('.scroll')).slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right));";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_signs_in_and_watches_a_deploy() {
    let lab = DeployLab::start(Options::default()).await;
    lab.upload("os", &image(6 << 20, 7));
    let base = lab.daemon.url.clone();
    let shots = artifacts();
    let browser = Browser::start(&lab.daemon).await;
    let mut seen = Seen::default();

    browser.goto(&format!("{base}/ui")).await;
    assert!(browser.url().await.ends_with("/ui/login"), "{}", browser.url().await);
    seen.record(&browser).await;
    browser.screenshot(&shots.join("1-sign-in.png")).await;
    browser.type_into("#token", TOKEN).await;
    browser.click("button[type=submit]").await;
    browser.wait_url(|u| u == format!("{base}/ui")).await;
    seen.record(&browser).await;
    assert!(browser.source().await.contains("node1"));

    // The session is invisible to scripts and nothing is kept in web storage.
    let cookies = browser.cookies().await;
    let session = cookies.as_array().and_then(|c| c.iter().find(|c| c["name"] == "metalhost_session")).expect("session cookie").clone();
    assert_eq!((session["httpOnly"].as_bool(), session["sameSite"].as_str()), (Some(true), Some("Strict")), "{session}");
    let script_view = browser.execute("return [document.cookie, sessionStorage.length, localStorage.length];").await;
    assert_eq!(script_view, json!(["", 0, 0]));
    browser.screenshot(&shots.join("2-pool.png")).await;

    // Create an instance on node1 through the form and its confirmation page.
    browser.goto(&format!("{base}/ui/instances")).await;
    seen.record(&browser).await;
    browser.execute("document.querySelector('select[name=node]').value = 'node1';").await;
    browser.click("form.create button[type=submit]").await;
    // The confirmation page answers the post at the same URL: wait for its content.
    let deadline = Instant::now() + Duration::from_secs(20);
    while browser.find("section.confirm").await.is_none() {
        assert!(Instant::now() < deadline, "no confirmation page: {}", browser.source().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen.record(&browser).await;
    assert!(browser.text(".question").await.contains("Deploy image os"), "{}", browser.source().await);
    browser.screenshot(&shots.join("3-confirm.png")).await;
    browser.click("section.confirm button.danger").await;
    let node_url = browser.wait_url(|u| u.starts_with(&format!("{base}/ui/nodes/"))).await;
    seen.record(&browser).await;

    // The page refreshes itself: the state badge moves without a reload until the node is active.
    let mut states = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let state = browser.text("#node-state").await;
        if !state.is_empty() && states.insert(state.clone()) {
            browser.screenshot(&shots.join(format!("4-node-{state}.png"))).await;
        }
        if state == "active" || state == "error" {
            break;
        }
        assert!(Instant::now() < deadline, "the page never showed active; saw {states:?}\n{}", lab.daemon.log());
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    println!("states the node page showed: {states:?}");
    assert_eq!(browser.url().await, node_url, "no navigation: the script refreshed the page");
    assert!(states.contains("active"), "{states:?}");
    assert!(states.iter().any(|s| ["deploying", "wait-agent", "activating"].contains(&s.as_str())), "saw no deploy state: {states:?}");
    assert!(browser.find("[data-refreshed]").await.is_some(), "the live part was refreshed");
    let events = browser.text("table.events").await;
    assert!(events.contains("agent writes the image: ok"), "{events}");
    // The console log holds what the agent printed on the node.
    let console = browser.text("#console-log").await;
    assert!(console.contains("[agent]") && console.contains("(deploy) received"), "{console}");
    let out = lab.daemon.cli(&["node", "console-log", "node1"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("(deploy) received"), "{}", String::from_utf8_lossy(&out.stderr));
    seen.record(&browser).await;
    browser.screenshot(&shots.join("5-node-active.png")).await;

    // Phone width: nothing is wider than the screen (tables scroll in their own box).
    browser.resize(390, 844).await;
    for (page, shot) in [(node_url.clone(), "6-phone-node.png"), (format!("{base}/ui"), "7-phone-pool.png")] {
        browser.goto(&page).await;
        seen.record(&browser).await;
        let overflow = browser.execute("return document.documentElement.scrollWidth - window.innerWidth;").await;
        if overflow.as_i64().is_none_or(|o| o > 0) {
            let wide = browser.execute(WIDEST).await;
            panic!("{page} overflows a phone screen by {overflow}px: {wide}");
        }
        browser.screenshot(&shots.join(shot)).await;
    }

    browser.click("form.signout button").await;
    browser.wait_url(|u| u.ends_with("/ui/login")).await;
    browser.goto(&format!("{base}/ui")).await;
    assert!(browser.url().await.ends_with("/ui/login"), "signed out");
    seen.record(&browser).await;
    browser.close().await;

    for url in &seen.urls {
        assert!(!url.contains(TOKEN), "the token reached a URL: {url}");
    }
    for source in &seen.sources {
        assert!(!source.contains(TOKEN), "the token is in a page source");
    }
    assert_eq!(seen.urls.len(), seen.sources.len());
}

/// The node page's live console in Chromium: it opens the node's serial console (ipmi-lan's
/// `ipmitool sol activate` against ipmi_sim, whose SOL reaches a console answering in upper
/// case), types a line, shows the answer, and closing it ends the console program.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_types_at_a_node_console() {
    use metalhost_tests::console::{UppercaseConsole, sol_programs, wait_no_sol_program};
    use metalhost_tests::daemon::{node_body, switch_body};
    use metalhost_tests::ipmi_sim::IpmiSim;

    let console = UppercaseConsole::start("");
    let bmc = IpmiSim::start_with_sol("admin", "ui-sol-pw", console.port);
    let daemon = Daemon::start_with(&format!(
        "[[plugin]]\nname = \"ipmi-lan\"\nkind = \"power\"\npath = \"{}\"\nconsole = [\"ipmitool\"]\n",
        paths::plugin_wasm("ipmi-lan").display()
    ));
    let (_, switch) = daemon.post("/v1/switches", &switch_body("sw1", "sw-pw")).await;
    let mut body = node_body(1, switch["id"].as_i64().expect("id"), "ui-sol-pw");
    body["bmc_port"] = json!(bmc.port);
    body["power_driver"] = json!("ipmi-lan");
    let (status, node) = daemon.post("/v1/nodes", &body).await;
    assert!(status.is_success(), "{node}");
    let base = daemon.url.clone();
    let shots = artifacts();
    let browser = Browser::start(&daemon).await;
    browser.goto(&format!("{base}/ui/login")).await;
    browser.type_into("#token", TOKEN).await;
    browser.click("button[type=submit]").await;
    browser.wait_url(|u| u == format!("{base}/ui")).await;
    browser.goto(&format!("{base}/ui/nodes/{}", node["id"])).await;

    browser.click("#console-open").await;
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut screen = String::new();
    while !screen.contains("HELLO FROM CHROMIUM") {
        assert!(Instant::now() < deadline, "the console never answered: {screen:?} ({})\n{}", browser.text("#console-status").await, daemon.log());
        if browser.text("#console-status").await == "Attached." {
            browser.type_into("#console-line", "hello from chromium").await;
            browser.execute("document.querySelector('#console-form').requestSubmit();").await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        screen = browser.text("#console-screen").await;
    }
    browser.screenshot(&shots.join("8-live-console.png")).await;
    assert_eq!(sol_programs(bmc.port).len(), 1);
    assert!(!browser.source().await.contains(TOKEN), "the token is in the page");

    browser.click("#console-close").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !browser.text("#console-status").await.starts_with("Closed") {
        assert!(Instant::now() < deadline, "{}", browser.text("#console-status").await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_no_sol_program(bmc.port).await;

    // Another site cannot attach with the browser's cookie: the Origin must be the daemon's.
    let (status, _) = daemon.get(&format!("/v1/nodes/{}/console", node["name"].as_str().unwrap_or(""))).await;
    assert_eq!(status, 426, "plain GET without upgrade");
    let cookies = browser.cookies().await;
    let session = cookies.as_array().and_then(|c| c.iter().find(|c| c["name"] == "metalhost_session")).expect("session cookie");
    let attempt = |origin: &'static str| {
        no_redirects(&daemon)
            .get(format!("{base}/ui/nodes/{}/console", node["id"]))
            .header("cookie", format!("metalhost_session={}", session["value"].as_str().unwrap_or("")))
            .header("origin", origin)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .send()
    };
    let refused = attempt("http://evil.example").await.expect("request");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "a foreign Origin attached");
    assert!(sol_programs(bmc.port).is_empty(), "a refused attach started a console");
    let own = base.clone().leak();
    let accepted = attempt(own).await.expect("request");
    assert_eq!(accepted.status(), StatusCode::SWITCHING_PROTOCOLS, "the daemon's own Origin is refused");
    drop(accepted);
    browser.close().await;
}
