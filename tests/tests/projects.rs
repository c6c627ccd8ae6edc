//! Projects, users and roles (issue 29): the whole authorization matrix generated from the API
//! description and checked against the live daemon; tenancy of console lines and events; quotas;
//! a VLAN per project on the real Juniper emulator; tokens never at rest.

use std::collections::BTreeMap;
use std::time::Duration;

use metalhost_tests::daemon::{Daemon, TOKEN};
use metalhost_tests::deploy_lab::{self, DeployLab, Options};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Who calls, in the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    NoToken,
    Revoked,
    Expired,
    ReaderA,
    MemberB,
    MemberA,
    Admin,
}

const EVERYONE: [Who; 7] = [Who::NoToken, Who::Revoked, Who::Expired, Who::ReaderA, Who::MemberB, Who::MemberA, Who::Admin];

/// Whose object an operation acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    A,
    B,
    /// The operation names no object of a project.
    None,
}

/// What the access layer answered, read from the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Unauthenticated,
    Forbidden,
    Hidden,
    /// Past the access layer: the handler answered (2xx, or its own 4xx/5xx).
    Passed,
}

fn verdict(status: StatusCode) -> Verdict {
    match status.as_u16() {
        401 => Verdict::Unauthenticated,
        403 => Verdict::Forbidden,
        404 => Verdict::Hidden,
        _ => Verdict::Passed,
    }
}

/// What the declared policy means, written from the roles the issue defines (not from the daemon's
/// code): the expected verdict for `who` on `side`'s object.
fn expected(policy: &str, who: Who, side: Side) -> Verdict {
    if policy == "public" {
        return Verdict::Passed;
    }
    if matches!(who, Who::NoToken | Who::Revoked | Who::Expired) {
        return Verdict::Unauthenticated;
    }
    if who == Who::Admin {
        return Verdict::Passed;
    }
    let in_project = match side {
        Side::A => matches!(who, Who::MemberA | Who::ReaderA),
        Side::B => who == Who::MemberB,
        Side::None => false,
    };
    let member = match side {
        Side::A => who == Who::MemberA,
        Side::B => who == Who::MemberB,
        Side::None => false,
    };
    match policy {
        "admin" => Verdict::Forbidden,
        "signed-in" => Verdict::Passed,
        // A token is its owner's alone: A's token is the member of A's, B's the member of B's.
        "read:token" | "write:token" => {
            if member {
                Verdict::Passed
            } else {
                Verdict::Hidden
            }
        }
        p if p.starts_with("read:") => {
            if in_project {
                Verdict::Passed
            } else {
                Verdict::Hidden
            }
        }
        p if p.starts_with("write:") || p == "create-in-project" => {
            if member {
                Verdict::Passed
            } else if in_project {
                Verdict::Forbidden
            } else {
                Verdict::Hidden
            }
        }
        other => panic!("the test does not know policy {other:?}"),
    }
}

/// A public key every user registers as its key pair `matrix`.
const MATRIX_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM8zNljC/Nju6+bVvAwE9j4y+dnoL7u4XrXuIEIUGuMa matrix";

/// One operation of the API document.
#[derive(Debug, Clone)]
struct Operation {
    id: String,
    method: Method,
    path: String,
    policy: String,
}

fn operations(document: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let Ok(method) = method.to_uppercase().parse::<Method>() else { continue };
            let Some(id) = op["operationId"].as_str() else { continue };
            let policy = op["x-metalhost-policy"].as_str().unwrap_or_else(|| panic!("{id} declares no policy")).to_owned();
            out.push(Operation { id: id.to_owned(), method, path: path.clone(), policy });
        }
    }
    // Reads first, deletions last, a sub-resource's deletion before its parent's; within an
    // operation the admin calls last (`EVERYONE`), so a deletion it is allowed harms nobody's case.
    out.sort_by_key(|o| (o.method == Method::DELETE, o.method != Method::GET, std::cmp::Reverse(o.path.clone())));
    out
}

/// The objects of each side, made once.
struct World {
    tokens: BTreeMap<Who, String>,
    node: [i64; 2],
    instance: [i64; 2],
    image: [i64; 2],
    project: [&'static str; 2],
    spare_token: [i64; 2],
    spare_user: &'static str,
    switch: i64,
}

fn fill(op: &Operation, world: &World, side: Side) -> String {
    let i = if side == Side::B { 1 } else { 0 };
    let object = if op.path.starts_with("/v1/switches") {
        world.switch.to_string()
    } else if op.path.starts_with("/v1/users") {
        world.spare_user.to_owned()
    } else if op.path.starts_with("/v1/nodes") {
        world.node[i].to_string()
    } else if op.path.starts_with("/v1/instances") {
        world.instance[i].to_string()
    } else if op.path.starts_with("/v1/images") {
        world.image[i].to_string()
    } else if op.path.starts_with("/v1/projects") {
        world.project[i].to_owned()
    } else if op.path.starts_with("/v1/tokens") {
        world.spare_token[i].to_string()
    } else {
        "1".to_owned()
    };
    let query = if op.id == "upload_image" { format!("?name=matrix&project={}", world.project[i]) } else { String::new() };
    let path = op
        .path
        .replace("{id}", &object)
        .replace("{project}", world.project[i])
        .replace("{name}", "matrix")
        .replace("{file}", if op.path.starts_with("/v1/bootstrap") { "manifest.json" } else { "52-54-00-00-77-01.ipxe" });
    format!("{path}{query}")
}

/// A body that gets past parsing, so the handler's own checks (and a create's project check) run.
fn body(op: &Operation, world: &World, side: Side) -> Option<Value> {
    let project = match side {
        Side::B => world.project[1],
        _ => world.project[0],
    };
    match op.id.as_str() {
        "create_instance" => Some(json!({"image": "no-such-image", "project": project, "name": "matrix"})),
        "register_image" => Some(json!({"name": "matrix", "url": "http://127.0.0.1:1/x.raw", "sha256": "0".repeat(64), "project": project})),
        "create_token" => Some(json!({"description": "matrix"})),
        "set_user_role" => Some(json!({"role": "reader"})),
        "update_project" => Some(json!({"quota": 5})),
        "set_node_power" => Some(json!({"action": "on"})),
        _ if op.method == Method::GET || op.method == Method::DELETE => None,
        _ => Some(json!({})),
    }
}

fn side_of(op: &Operation) -> Vec<Side> {
    let has_object = op.path.contains("{id}") && !op.policy.starts_with("admin") || op.policy == "create-in-project";
    if has_object { vec![Side::A, Side::B] } else { vec![Side::None] }
}

async fn call(http: &reqwest::Client, url: &str, op: &Operation, path: &str, body: Option<Value>, token: Option<&str>) -> StatusCode {
    let mut request = http.request(op.method.clone(), format!("{url}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if op.id == "upload_image" {
        request = request.header("content-type", "application/octet-stream").body(vec![0u8; 64]);
    } else if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("send").status()
}

async fn token_for(d: &Daemon, user: &str, days: i64) -> (i64, String) {
    let (status, token) = d.post("/v1/tokens", &json!({"user": user, "description": "test", "expires_in_days": days})).await;
    assert_eq!(status, StatusCode::CREATED, "{token}");
    (token["id"].as_i64().expect("id"), token["token"].as_str().expect("token").to_owned())
}

async fn make_world(lab: &DeployLab) -> World {
    let d = &lab.daemon;
    for (name, quota) in [("alpha", 5), ("beta", 5)] {
        let (status, p) = d.post("/v1/projects", &json!({"name": name, "quota": quota})).await;
        assert_eq!(status, StatusCode::CREATED, "{p}");
    }
    for (name, admin) in [("ann", false), ("rita", false), ("bob", false), ("adam", true), ("spare", false)] {
        let (status, u) = d.post("/v1/users", &json!({"name": name, "admin": admin})).await;
        assert_eq!(status, StatusCode::CREATED, "{u}");
    }
    for (user, project, role) in [("ann", "alpha", "member"), ("rita", "alpha", "reader"), ("bob", "beta", "member"), ("spare", "alpha", "member")] {
        let (status, u) = d.call(Method::PUT, &format!("/v1/users/{user}/roles/{project}"), Some(&json!({"role": role}))).await;
        assert_eq!(status, StatusCode::OK, "{u}");
    }
    let mut tokens = BTreeMap::new();
    tokens.insert(Who::MemberA, token_for(d, "ann", 30).await.1);
    tokens.insert(Who::ReaderA, token_for(d, "rita", 30).await.1);
    tokens.insert(Who::MemberB, token_for(d, "bob", 30).await.1);
    tokens.insert(Who::Admin, token_for(d, "adam", 30).await.1);
    let (revoked_id, revoked) = token_for(d, "ann", 30).await;
    assert_eq!(d.delete(&format!("/v1/tokens/{revoked_id}")).await.0, StatusCode::OK);
    tokens.insert(Who::Revoked, revoked);
    let (expired_id, expired) = token_for(d, "ann", 1).await;
    d.exec_sql(&format!("UPDATE tokens SET expires_at = 1000 WHERE id = {expired_id}"));
    tokens.insert(Who::Expired, expired);
    // Each signed-in user's own key pair, which its delete in the matrix names.
    for who in [Who::MemberA, Who::ReaderA, Who::MemberB, Who::Admin] {
        let body = json!({"name": "matrix", "public_key": MATRIX_KEY});
        let (status, pair) = d.call_with_token(Method::POST, "/v1/keypairs", Some(&body), tokens.get(&who).map(String::as_str)).await;
        assert_eq!(status, StatusCode::CREATED, "{who:?}: {pair}");
    }
    let spare_token = [token_for(d, "ann", 30).await.0, token_for(d, "bob", 30).await.0];

    // One image and one instance per project, the instances on node1 and node2.
    let mut image = [0; 2];
    let mut instance = [0; 2];
    for (i, project) in ["alpha", "beta"].into_iter().enumerate() {
        let img = lab.upload(&format!("img-{project}"), &deploy_lab::image(1 << 20, i as u8));
        image[i] = img["id"].as_i64().expect("image id");
        d.exec_sql(&format!("UPDATE images SET project_id = (SELECT id FROM projects WHERE name = '{project}') WHERE id = {}", image[i]));
        let (status, inst) = d
            .post(
                "/v1/instances",
                &json!({"image": image[i].to_string(), "project": project, "node": lab.nodes[i].name, "name": format!("inst-{project}")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{inst}");
        instance[i] = inst["id"].as_i64().expect("instance id");
    }
    // Node inventories answer 404 until a report exists: give each node one (an admin's read).
    for node in &lab.nodes {
        let report = json!({
            "cpu": {"count": 8, "model": "Test CPU"}, "memory_bytes": 16u64 << 30,
            "disks": [{"name": "vda", "size_bytes": 100u64 << 30, "model": null, "serial": null, "rotational": false, "wwn": null}],
            "nics": [{"name": "eth0", "mac": node.mac, "driver": "e1000", "link": true, "speed_mbps": 1000, "ipv4": null}],
            "system": {"vendor": "Acme", "product": "X1", "serial": "S1"}, "boot_mode": "bios", "lldp": []
        });
        d.exec_sql(&format!("INSERT INTO node_inventory (node_id, report, reported_at) VALUES ({}, '{report}', 0)", node.id));
    }
    let (_, switches) = d.get("/v1/switches").await;
    World {
        tokens,
        node: [lab.nodes[0].id, lab.nodes[1].id],
        instance,
        image,
        project: ["alpha", "beta"],
        spare_token,
        spare_user: "spare",
        switch: switches[0]["id"].as_i64().expect("switch id"),
    }
}

/// Every operation × every caller × both projects' objects: the daemon's answers, and the ones
/// the declared policies call for.
type Answers = Vec<(Operation, Who, Side, StatusCode)>;

fn mismatches(answers: &Answers, policy_of: impl Fn(&Operation) -> String) -> Vec<String> {
    answers
        .iter()
        .filter_map(|(op, who, side, status)| {
            let policy = policy_of(op);
            let want = expected(&policy, *who, *side);
            let got = verdict(*status);
            // A public route may answer 404 for a file it does not have; it never asks for a token.
            let matches = if policy == "public" { !matches!(got, Verdict::Unauthenticated | Verdict::Forbidden) } else { want == got };
            (!matches).then(|| format!("{} {} ({}) as {who:?} on {side:?}'s object: expected {want:?}, got {status}", op.method, op.path, op.id))
        })
        .collect()
}

#[tokio::test]
async fn the_authorization_matrix_follows_the_declared_policies() {
    // No agents: the instances stay on their way (deploying), which is all the matrix needs.
    let lab = DeployLab::start(Options { nodes: 2, agents: false, agent_timeout_s: 600, ..Options::default() }).await;
    let world = make_world(&lab).await;
    let d = &lab.daemon;
    let document = d.get("/v1/openapi.json").await.1;
    let ops = operations(&document);
    assert!(ops.len() >= 60, "{} operations", ops.len());
    let http = d.http_client();
    let mut answers: Answers = Vec::new();
    for op in ops.iter().filter(|o| o.policy != "agent") {
        for side in side_of(op) {
            for who in EVERYONE {
                let token = world.tokens.get(&who).map(String::as_str);
                let status = call(&http, &d.url, op, &fill(op, &world, side), body(op, &world, side), token).await;
                answers.push((op.clone(), who, side, status));
            }
        }
    }
    // The agent's routes take a node's or an image's token, never a user's.
    for op in ops.iter().filter(|o| o.policy == "agent" && o.id != "image_data") {
        for who in [Who::MemberA, Who::Admin] {
            let status =
                call(&http, &d.url, op, &fill(op, &world, Side::A), body(op, &world, Side::A), world.tokens.get(&who).map(String::as_str)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{} as {who:?}", op.id);
        }
    }
    let wrong = mismatches(&answers, |op| op.policy.clone());
    assert!(wrong.is_empty(), "{} of {} answers differ from the declared policies:\n{}", wrong.len(), answers.len(), wrong.join("\n"));
    eprintln!("authorization matrix: {} answers, all as declared", answers.len());

    // A wrongly declared policy fails the matrix: declare deleting an instance a reader's right,
    // or listing the switches anyone's, and the same answers no longer match.
    for (operation, wrong_policy) in [("delete_instance", "read:instance"), ("list_switches", "signed-in"), ("show_node", "admin")] {
        let found = mismatches(&answers, |op| if op.id == operation { wrong_policy.to_owned() } else { op.policy.clone() });
        assert!(!found.is_empty(), "declaring {operation} {wrong_policy} went unnoticed");
    }

    // Lists hold only what the caller may see, and users never see BMCs or switch ports.
    let ann = &world.tokens[&Who::MemberA];
    let (_, nodes) = d.call_with_token(Method::GET, "/v1/nodes", None, Some(ann)).await;
    let names: Vec<&str> = nodes.as_array().expect("list").iter().filter_map(|n| n["name"].as_str()).collect();
    assert_eq!(names, ["node1"], "{nodes}");
    assert!(nodes[0].get("bmc_address").is_none() && nodes[0].get("switch_port").is_none(), "{nodes}");
    let (_, instances) = d.call_with_token(Method::GET, "/v1/instances", None, Some(ann)).await;
    assert_eq!(instances.as_array().map(Vec::len), Some(1), "{instances}");
    assert_eq!(instances[0]["name"], "inst-alpha");
    // Instance lists come in cursor pages too, within the caller's projects.
    let page = http.get(format!("{}/v1/instances?limit=1", d.url)).bearer_auth(TOKEN).send().await.expect("page");
    let link = page.headers()["link"].to_str().expect("link").to_owned();
    assert!(link.starts_with("</v1/instances?limit=1&after="), "{link}");
    assert_eq!(page.json::<Value>().await.expect("json")[0]["name"], "inst-alpha");
    let next = link.trim_start_matches('<').split('>').next().expect("url").to_owned();
    assert_eq!(d.get(&next).await.1[0]["name"], "inst-beta");
    let (_, other) = d.call_with_token(Method::GET, "/v1/instances?project=beta", None, Some(ann)).await;
    assert_eq!(other.as_array().map(Vec::len), Some(0), "another project's instances are not A's to list: {other}");
    assert_eq!(d.get("/v1/instances?state=sleeping").await.0, StatusCode::BAD_REQUEST);
    let (_, projects) = d.call_with_token(Method::GET, "/v1/projects", None, Some(ann)).await;
    assert_eq!(projects.as_array().map(Vec::len), Some(1), "{projects}");
    let (_, all) = d.call_with_token(Method::GET, "/v1/nodes", None, Some(&world.tokens[&Who::Admin])).await;
    assert_eq!(all.as_array().map(Vec::len), Some(2));
    assert!(all[0]["bmc_address"].is_string(), "{all}");

    // Every change and console attach is in the audit trail, with who and the outcome.
    // The matrix made more than a page: every page of the trail, newest first, each entry once.
    let (pages, _) = d.pages("/v1/audit?limit=100", Some(TOKEN)).await;
    assert!(pages.len() > 1, "the matrix fits one page of 100");
    let entries = pages.concat();
    let ids: Vec<i64> = entries.iter().filter_map(|e| e["id"].as_i64()).collect();
    assert!(ids.len() == entries.len() && ids.windows(2).all(|w| w[0] > w[1]), "pages overlap or go back");
    assert!(d.get("/v1/audit?limit=1001").await.0 == StatusCode::BAD_REQUEST && d.get("/v1/audit?limit=0").await.0 == StatusCode::BAD_REQUEST);
    let find =
        |actor: &str, action: &str, outcome: u64| entries.iter().any(|e| e["actor"] == actor && e["action"] == action && e["outcome"] == outcome);
    assert!(find("bob", "delete_instance", 404), "member B's refused delete of A's instance is recorded");
    assert!(find("rita", "delete_instance", 403), "a reader's refused delete is recorded");
    assert!(find("anonymous", "create_node", 401));
    assert!(find("ann", "node_console", 426), "a console attach attempt is recorded");
    assert!(find("admin", "create_project", 201));
    assert_eq!(d.call_with_token(Method::GET, "/v1/audit", None, Some(ann)).await.0, StatusCode::FORBIDDEN);

    // The web view per user: a member signs in with its token and sees its project only.
    let web = d.http_client_builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let sign_in = |token: String| {
        let web = web.clone();
        let url = d.url.clone();
        async move { web.post(format!("{url}/ui/login")).header("origin", &url).form(&[("token", token)]).send().await.expect("sign in") }
    };
    let cookie_of = |r: &reqwest::Response| r.headers()["set-cookie"].to_str().expect("cookie").split(';').next().expect("pair").to_owned();
    let page = |cookie: String, path: String| {
        let web = web.clone();
        let url = d.url.clone();
        async move {
            let r = web.get(format!("{url}{path}")).header("cookie", cookie).send().await.expect("get");
            (r.status(), r.text().await.expect("body"))
        }
    };
    let signed = sign_in(ann.clone()).await;
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    let ann_cookie = cookie_of(&signed);
    let (status, pool) = page(ann_cookie.clone(), "/ui".into()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(pool.contains(">node1<") && !pool.contains(">node2<"), "{pool}");
    let (status, _) = page(ann_cookie.clone(), format!("/ui/nodes/{}", world.node[1])).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "B's node does not exist for A's member");
    let (status, own) = page(ann_cookie.clone(), format!("/ui/nodes/{}", world.node[0])).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!own.contains("BMC") && !own.contains("Recover"), "users see no BMC and no admin action");
    assert_eq!(page(ann_cookie.clone(), "/ui/plugins".into()).await.0, StatusCode::FORBIDDEN);
    let (_, instances_page) = page(ann_cookie, "/ui/instances".into()).await;
    assert!(instances_page.contains("inst-alpha") && !instances_page.contains("inst-beta"));
    // An admin sees every node, or one project's.
    let admin_cookie = cookie_of(&sign_in(TOKEN.to_owned()).await);
    let (_, all) = page(admin_cookie.clone(), "/ui".into()).await;
    assert!(all.contains(">node1<") && all.contains(">node2<"));
    let (_, beta) = page(admin_cookie, "/ui?project=beta".into()).await;
    assert!(beta.contains(">node2<") && !beta.contains(">node1<"), "{beta}");
    // Sign-in attempts are limited per address: wrong tokens soon meet 429, and then a right one too.
    let mut limited = false;
    for _ in 0..12 {
        if sign_in("mht_wrong".to_owned()).await.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
    }
    assert!(limited, "twelve wrong sign-ins in a row are not limited");
    assert_eq!(sign_in(TOKEN.to_owned()).await.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_new_tenant_sees_none_of_the_previous_tenants_console_or_events() {
    let lab = DeployLab::start(Options { nodes: 1, ..Options::default() }).await;
    let d = &lab.daemon;
    for name in ["red", "blue"] {
        assert_eq!(d.post("/v1/projects", &json!({"name": name, "quota": 2})).await.0, StatusCode::CREATED);
    }
    for (user, project) in [("rosa", "red"), ("bert", "blue")] {
        assert_eq!(d.post("/v1/users", &json!({"name": user})).await.0, StatusCode::CREATED);
        let (status, _) = d.call(Method::PUT, &format!("/v1/users/{user}/roles/{project}"), Some(&json!({"role": "member"}))).await;
        assert_eq!(status, StatusCode::OK);
    }
    let rosa = token_for(d, "rosa", 30).await.1;
    let bert = token_for(d, "bert", 30).await.1;
    lab.upload("os", &deploy_lab::image(2 << 20, 3));
    let node = &lab.nodes[0].name;

    // Red's instance: deployed, with the agent's console lines recorded under it.
    let (status, red) =
        d.call_with_token(Method::POST, "/v1/instances", Some(&json!({"image": "os", "project": "red", "name": "red1"})), Some(&rosa)).await;
    assert_eq!(status, StatusCode::CREATED, "{red}");
    assert_eq!(lab.wait_node(node, &["active"], Duration::from_secs(120)).await["state"], "active");
    let (_, red_lines) = d.call_with_token(Method::GET, &format!("/v1/nodes/{node}/console-log"), None, Some(&rosa)).await;
    assert!(!red_lines.as_array().expect("lines").is_empty(), "the agent's lines are red's to read");
    let (_, red_events) = d.call_with_token(Method::GET, &format!("/v1/nodes/{node}/events"), None, Some(&rosa)).await;
    let red_event_ids: Vec<i64> = red_events.as_array().expect("events").iter().filter_map(|e| e["id"].as_i64()).collect();
    assert!(!red_event_ids.is_empty());
    // Blue has no instance there: the node, its console and its log do not exist for blue.
    for path in [
        format!("/v1/nodes/{node}"),
        format!("/v1/nodes/{node}/console-log"),
        format!("/v1/nodes/{node}/events"),
        format!("/v1/nodes/{node}/console"),
    ] {
        let (status, body) = d.call_with_token(Method::GET, &path, None, Some(&bert)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    // Red's instance goes; blue deploys on the same node.
    assert_eq!(d.call_with_token(Method::DELETE, "/v1/instances/red1", None, Some(&rosa)).await.0, StatusCode::ACCEPTED);
    assert_eq!(lab.wait_node(node, &["available"], Duration::from_secs(120)).await["state"], "available");
    let (status, blue) =
        d.call_with_token(Method::POST, "/v1/instances", Some(&json!({"image": "os", "project": "blue", "name": "blue1"})), Some(&bert)).await;
    assert_eq!(status, StatusCode::CREATED, "{blue}");
    assert_eq!(lab.wait_node(node, &["active"], Duration::from_secs(120)).await["state"], "active");
    let (_, blue_lines) = d.call_with_token(Method::GET, &format!("/v1/nodes/{node}/console-log"), None, Some(&bert)).await;
    let (_, blue_events) = d.call_with_token(Method::GET, &format!("/v1/nodes/{node}/events"), None, Some(&bert)).await;
    let blue_event_ids: Vec<i64> = blue_events.as_array().expect("events").iter().filter_map(|e| e["id"].as_i64()).collect();
    assert!(!blue_event_ids.is_empty(), "blue sees its own deploy's events");
    assert!(blue_event_ids.iter().all(|id| !red_event_ids.contains(id)), "blue sees red's events: {blue_events}");
    assert!(blue_event_ids.iter().all(|id| *id > *red_event_ids.iter().max().unwrap_or(&0)), "{blue_events}");
    assert!(blue_events.as_array().expect("events").iter().all(|e| !e["message"].as_str().unwrap_or("").contains("red1")), "{blue_events}");
    // Across pages too: blue's pages join up to its own events exactly, and the admin's to all.
    let (pages, links) = d.pages(&format!("/v1/nodes/{node}/events?limit=2"), Some(&bert)).await;
    assert!(pages.len() > 1, "{links:?}");
    assert_eq!(Value::Array(pages.concat()), blue_events, "blue's pages are its whole log, and only its");
    let (_, admin_events) = d.get(&format!("/v1/nodes/{node}/events")).await;
    let (pages, _) = d.pages(&format!("/v1/nodes/{node}/events?limit=3"), Some(TOKEN)).await;
    assert_eq!(Value::Array(pages.concat()), admin_events);
    assert!(admin_events.as_array().expect("events").iter().any(|e| red_event_ids.contains(&e["id"].as_i64().unwrap_or(0))));
    // A cursor into red's events shows blue nothing of them.
    let first_red = red_event_ids[0];
    let (_, from_red) =
        d.call_with_token(Method::GET, &format!("/v1/nodes/{node}/events?limit=1000&after={}", first_red - 1), None, Some(&bert)).await;
    assert_eq!(from_red, blue_events);
    let red_texts: Vec<&Value> = red_lines.as_array().expect("lines").iter().collect();
    let (_, all_lines) = d.get(&format!("/v1/nodes/{node}/console-log")).await;
    assert!(all_lines.as_array().expect("lines").len() > blue_lines.as_array().expect("lines").len(), "the admin reads every tenancy's lines");
    let blue_count = blue_lines.as_array().expect("lines").len();
    assert!(blue_count > 0 && blue_count < all_lines.as_array().expect("lines").len() && !red_texts.is_empty());
    // Red's member no longer sees the node at all.
    assert_eq!(d.call_with_token(Method::GET, &format!("/v1/nodes/{node}/console-log"), None, Some(&rosa)).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn quota_vlans_and_tokens_at_rest() {
    let lab = DeployLab::start(Options { nodes: 2, tenant_vlans: "201-202".into(), ..Options::default() }).await;
    let d = &lab.daemon;
    let (_, red) = d.post("/v1/projects", &json!({"name": "red", "quota": 1})).await;
    let (_, blue) = d.post("/v1/projects", &json!({"name": "blue", "quota": 1})).await;
    assert_eq!((red["vlan"].as_u64(), blue["vlan"].as_u64()), (Some(201), Some(202)), "{red} {blue}");
    // The range is exhausted: a clear refusal, and no project made.
    let (status, third) = d.post("/v1/projects", &json!({"name": "green", "quota": 1})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{third}");
    assert!(third["error"]["message"].as_str().unwrap_or("").contains("201-202"), "{third}");
    assert_eq!(d.get("/v1/projects").await.1.as_array().map(Vec::len), Some(2));

    lab.upload("os", &deploy_lab::image(1 << 20, 9));
    let (status, inst) = d.post("/v1/instances", &json!({"image": "os", "project": "red", "node": "node1"})).await;
    assert_eq!(status, StatusCode::CREATED, "{inst}");
    assert_eq!(lab.wait_node("node1", &["active"], Duration::from_secs(120)).await["state"], "active");
    // The node's port is on red's VLAN in the switch itself.
    assert_eq!(lab.switch.port_vlan(&lab.nodes[0].port), Some(201));
    assert_eq!(d.get("/v1/instances/1").await.1["project_vlan"], 201);

    // Quota: the second instance of red is refused and touches no node.
    let events_before = d.get("/v1/nodes/node2/events").await.1.as_array().map(Vec::len);
    let (status, refused) = d.post("/v1/instances", &json!({"image": "os", "project": "red"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap_or("").contains("quota"), "{refused}");
    let node2 = d.get("/v1/nodes/node2").await.1;
    assert_eq!(node2["state"], "available");
    assert_eq!(d.get("/v1/nodes/node2/events").await.1.as_array().map(Vec::len), events_before);
    // A node dedicated to blue is no other project's, even with room in red's raised quota.
    let (status, raised) = d.patch("/v1/projects/red", &json!({"quota": 2})).await;
    assert_eq!((status, raised["quota"].as_i64()), (StatusCode::OK, Some(2)), "{raised}");
    let (status, node2) = d.patch("/v1/nodes/node2", &json!({"dedicated_to": "blue"})).await;
    assert_eq!((status, node2["dedicated_to"].as_i64()), (StatusCode::OK, blue["id"].as_i64()), "{node2}");
    let (status, none) = d.post("/v1/instances", &json!({"image": "os", "project": "red"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{none}");
    let (status, named) = d.post("/v1/instances", &json!({"image": "os", "project": "red", "node": "node2"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{named}");
    assert!(named["error"]["message"].as_str().unwrap_or("").contains("dedicated"), "{named}");
    assert_eq!(d.get("/v1/nodes/node2/events").await.1.as_array().map(Vec::len), events_before);
    assert_eq!(d.patch("/v1/nodes/node2", &json!({"dedicated_to": ""})).await.1["dedicated_to"], Value::Null);
    // A project with instances cannot be deleted; an empty one can, and its VLAN is free again.
    assert_eq!(d.delete("/v1/projects/red").await.0, StatusCode::CONFLICT);
    assert_eq!(d.delete("/v1/projects/blue").await.0, StatusCode::NO_CONTENT);
    let (_, green) = d.post("/v1/projects", &json!({"name": "green", "quota": 1})).await;
    assert_eq!(green["vlan"], 202, "{green}");

    // Tokens at rest: the database holds none of them.
    assert_eq!(d.post("/v1/users", &json!({"name": "tess"})).await.0, StatusCode::CREATED);
    let tokens = [token_for(d, "tess", 30).await.1, token_for(d, "tess", 7).await.1];
    assert_eq!(d.call_with_token(Method::GET, "/v1/whoami", None, Some(&tokens[0])).await.1["name"], "tess");
    let mut bytes = Vec::new();
    match &d.pg_database {
        // The whole database as text, every table.
        Some(db) => bytes = metalhost_tests::postgres::PgServer::shared().dump(db).expect("pg_dump"),
        None => {
            for file in ["metalhost.db", "metalhost.db-wal"] {
                bytes.extend(std::fs::read(d.data_dir.join(file)).unwrap_or_default());
            }
        }
    }
    assert!(bytes.len() > 4096 && bytes.windows(4).any(|w| w == b"tess"), "the copy holds the users");
    for token in tokens.iter().map(String::as_str).chain([TOKEN]) {
        assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()), "a token is in the database");
    }
    // The listed tokens never show the token itself.
    let (_, listed) = d.get("/v1/tokens").await;
    assert!(!listed.to_string().contains(&tokens[0]), "{listed}");

    // The CLI: an admin makes a project and a user, grants a role and makes a token it saves to the
    // client config file; the user's own commands then need neither --token nor METALHOST_TOKEN.
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(d.cli(&["project", "delete", "green"]));
    ok(d.cli(&["project", "create", "teal", "--quota", "3"]));
    ok(d.cli(&["user", "create", "tom"]));
    assert!(ok(d.cli(&["user", "grant", "tom", "teal", "--role", "reader"])).contains("teal:reader"));
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("client.toml");
    let config_env = [("METALHOST_CLIENT_CONFIG", config.to_str().expect("utf8"))];
    ok(d.cli_with_env(&["token", "create", "--user", "tom", "--save"], &config_env));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&config).expect("saved").permissions().mode() & 0o777, 0o600);
    let as_tom = |args: &[&str]| {
        std::process::Command::new(metalhost_tests::paths::host_binary("metalhost"))
            .args(args)
            .env("METALHOST_CLIENT_CONFIG", &config)
            .env_remove("METALHOST_TOKEN")
            .env_remove("METALHOST_URL")
            .output()
            .expect("run the CLI")
    };
    let listed = ok(as_tom(&["project", "list"]));
    assert!(listed.contains("teal") && !listed.contains("red"), "{listed}");
    // A reader cannot create in its project; the CLI says why.
    let refused = as_tom(&["instance", "create", "--image", "os", "--project", "teal"]);
    assert!(!refused.status.success());
    // METALHOST_TOKEN wins over the file.
    let wrong = std::process::Command::new(metalhost_tests::paths::host_binary("metalhost"))
        .args(["project", "list"])
        .env("METALHOST_CLIENT_CONFIG", &config)
        .env("METALHOST_TOKEN", "mht_not-a-token")
        .env_remove("METALHOST_URL")
        .output()
        .expect("run");
    assert!(!wrong.status.success() && String::from_utf8_lossy(&wrong.stderr).contains("401"), "{}", String::from_utf8_lossy(&wrong.stderr));
    // A config file others may read is refused.
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let loose = as_tom(&["project", "list"]);
    assert!(!loose.status.success() && String::from_utf8_lossy(&loose.stderr).contains("chmod 600"));
    let audit = ok(d.cli(&["audit", "--limit", "500"]));
    assert!(audit.contains("set_user_role") && audit.contains("create_token"), "{audit}");
}
