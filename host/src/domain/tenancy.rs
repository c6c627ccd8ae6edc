//! Who may do what (ARCHITECTURE.md, "Projects and access"): projects, users and their roles,
//! the policy each API operation declares, and the one function that decides. Pure: the doors
//! find the caller and the object's projects, this module says yes, no, or "there is no such thing".

use super::ParseError;

pub use super::ids::{ProjectId, UserId};

/// A user's role in one project. System-wide administration is not a project role (`Caller::admin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Reads the project's instances, their nodes, images and console logs.
    Reader,
    /// A reader who also creates and deletes the project's instances and images, and drives its
    /// instances' nodes' power and consoles.
    Member,
}

impl Role {
    pub const ALL: &'static [&'static str] = &["reader", "member"];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Member => "member",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "reader" => Ok(Role::Reader),
            "member" => Ok(Role::Member),
            other => Err(ParseError(format!("role must be one of {}, got {other:?}", Role::ALL.join(", ")))),
        }
    }
}

/// The signed-in caller of an operation, as its token names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: UserId,
    pub name: String,
    pub admin: bool,
    /// The caller's role in each of its projects.
    pub roles: Vec<(ProjectId, Role)>,
}

impl Caller {
    pub fn role_in(&self, project: ProjectId) -> Option<Role> {
        self.roles.iter().find(|(p, _)| *p == project).map(|(_, r)| *r)
    }

    /// Every project the caller may read; `None` for an admin, who reads everything.
    pub fn visible_projects(&self) -> Option<Vec<ProjectId>> {
        if self.admin { None } else { Some(self.roles.iter().map(|(p, _)| *p).collect()) }
    }
}

/// What an operation's object is, for a policy that depends on the object's project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A node: its current instance's project, or the project it is dedicated to.
    Node,
    /// A node's tenancy (console, console log, events): its current instance's project only.
    Tenancy,
    Instance,
    /// An image: its project's, or public (no project: every signed-in user reads it, admins write it).
    Image,
    Project,
    /// An API token: its owner's (a user reads and revokes their own).
    Token,
}

impl ObjectKind {
    pub const ALL: &'static [ObjectKind] =
        &[ObjectKind::Node, ObjectKind::Tenancy, ObjectKind::Instance, ObjectKind::Image, ObjectKind::Project, ObjectKind::Token];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Node => "node",
            ObjectKind::Tenancy => "tenancy",
            ObjectKind::Instance => "instance",
            ObjectKind::Image => "image",
            ObjectKind::Project => "project",
            ObjectKind::Token => "token",
        }
    }
}

/// The policy an operation declares once, in its OpenAPI description (`x-metalhost-policy`), which
/// the API's one enforcing layer reads (api/policy.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// No token: health, the API document, what firmware and the bootstrap fetch.
    Public,
    /// The agent's node token (or an image token), checked by those routes themselves.
    Agent,
    /// System administrators only.
    Admin,
    /// Any signed-in user; the answer holds only what the caller may see (lists, its own tokens).
    SignedIn,
    /// Readers and members of the object's project (and admins).
    Read(ObjectKind),
    /// Members of the object's project (and admins).
    Write(ObjectKind),
    /// Creates something in the project named in the request: its members (and admins).
    CreateIn,
}

impl Policy {
    /// The operation extension's name in the API document.
    pub const EXTENSION: &'static str = "x-metalhost-policy";

    pub fn object(self) -> Option<ObjectKind> {
        match self {
            Policy::Read(kind) | Policy::Write(kind) => Some(kind),
            _ => None,
        }
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Policy::Public => f.write_str("public"),
            Policy::Agent => f.write_str("agent"),
            Policy::Admin => f.write_str("admin"),
            Policy::SignedIn => f.write_str("signed-in"),
            Policy::Read(kind) => write!(f, "read:{}", kind.as_str()),
            Policy::Write(kind) => write!(f, "write:{}", kind.as_str()),
            Policy::CreateIn => f.write_str("create-in-project"),
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let kind = |name: &str| {
            ObjectKind::ALL
                .iter()
                .copied()
                .find(|k| k.as_str() == name)
                .ok_or_else(|| ParseError(format!("unknown object kind {name:?} in policy {s:?}")))
        };
        match s.split_once(':') {
            None => match s {
                "public" => Ok(Policy::Public),
                "agent" => Ok(Policy::Agent),
                "admin" => Ok(Policy::Admin),
                "signed-in" => Ok(Policy::SignedIn),
                "create-in-project" => Ok(Policy::CreateIn),
                other => Err(ParseError(format!("unknown policy {other:?}"))),
            },
            Some(("read", k)) => Ok(Policy::Read(kind(k)?)),
            Some(("write", k)) => Ok(Policy::Write(kind(k)?)),
            Some(_) => Err(ParseError(format!("unknown policy {s:?}"))),
        }
    }
}

/// Whose an object is, as far as access goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Nobody's in particular: public images; nodes with no instance and no dedication.
    Nobody,
    /// Belongs to these projects (a node: its instance's and its dedicated project).
    Projects(Vec<ProjectId>),
    /// A user's own (tokens).
    User(UserId),
}

/// The answer to "may this caller do this to this object?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// No valid token: 401.
    Unauthenticated,
    /// The caller sees the object but may not do this: 403.
    Forbidden,
    /// To the caller the object does not exist: 404.
    Hidden,
}

/// Decides one operation. `owner` is the object's owner for object policies (`None` when the object
/// does not exist, which the handler then reports itself), the project named in the request for
/// `CreateIn` (as `Owner::Projects`, or `Nobody` when it names none).
pub fn decide(policy: Policy, caller: Option<&Caller>, owner: Option<&Owner>) -> Decision {
    let Some(caller) = caller else {
        return if matches!(policy, Policy::Public | Policy::Agent) { Decision::Allow } else { Decision::Unauthenticated };
    };
    if caller.admin {
        return Decision::Allow;
    }
    let best_role = |projects: &[ProjectId]| projects.iter().filter_map(|p| caller.role_in(*p)).max_by_key(|r| *r == Role::Member);
    match policy {
        Policy::Public | Policy::Agent | Policy::SignedIn => Decision::Allow,
        Policy::Admin => Decision::Forbidden,
        Policy::Read(_) => match owner {
            // An object that does not exist: the handler says so.
            None => Decision::Allow,
            Some(Owner::Nobody) => match policy.object() {
                // Public images are for everyone to read.
                Some(ObjectKind::Image) => Decision::Allow,
                _ => Decision::Hidden,
            },
            Some(Owner::Projects(projects)) => {
                if best_role(projects).is_some() {
                    Decision::Allow
                } else {
                    Decision::Hidden
                }
            }
            Some(Owner::User(user)) => {
                if *user == caller.user {
                    Decision::Allow
                } else {
                    Decision::Hidden
                }
            }
        },
        Policy::Write(kind) => match owner {
            None => Decision::Allow,
            Some(Owner::Nobody) => {
                if kind == ObjectKind::Image {
                    Decision::Forbidden
                } else {
                    Decision::Hidden
                }
            }
            Some(Owner::Projects(projects)) => match best_role(projects) {
                Some(Role::Member) => Decision::Allow,
                Some(Role::Reader) => Decision::Forbidden,
                None => Decision::Hidden,
            },
            Some(Owner::User(user)) => {
                if *user == caller.user {
                    Decision::Allow
                } else {
                    Decision::Hidden
                }
            }
        },
        Policy::CreateIn => match owner {
            // The project is in the request's body: the handler asks again once it has read it.
            None => Decision::Allow,
            // Creating something public (no project) is an administrator's job.
            Some(Owner::Nobody) | Some(Owner::User(_)) => Decision::Forbidden,
            Some(Owner::Projects(projects)) => match best_role(projects) {
                Some(Role::Member) => Decision::Allow,
                Some(Role::Reader) => Decision::Forbidden,
                None => Decision::Hidden,
            },
        },
    }
}

/// A `[network] tenant_vlans` range ("200-299"): the VLANs projects get, one each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanRange {
    pub first: u16,
    pub last: u16,
}

impl VlanRange {
    pub fn contains(self, vlan: u16) -> bool {
        (self.first..=self.last).contains(&vlan)
    }
}

impl std::str::FromStr for VlanRange {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let bad = || ParseError(format!("a VLAN range is FIRST-LAST with 1 <= FIRST <= LAST <= 4094, e.g. \"200-299\"; got {s:?}"));
        let (first, last) = s.split_once('-').ok_or_else(bad)?;
        let first: u16 = first.trim().parse().map_err(|_| bad())?;
        let last: u16 = last.trim().parse().map_err(|_| bad())?;
        if first == 0 || last > 4094 || first > last {
            return Err(bad());
        }
        Ok(VlanRange { first, last })
    }
}

impl std::fmt::Display for VlanRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(roles: &[(i64, Role)]) -> Caller {
        Caller { user: UserId(7), name: "u".into(), admin: false, roles: roles.iter().map(|(p, r)| (ProjectId(*p), *r)).collect() }
    }

    #[test]
    fn policies_round_trip_through_their_names() {
        for p in [
            Policy::Public,
            Policy::Agent,
            Policy::Admin,
            Policy::SignedIn,
            Policy::CreateIn,
            Policy::Read(ObjectKind::Node),
            Policy::Write(ObjectKind::Tenancy),
            Policy::Read(ObjectKind::Token),
        ] {
            assert_eq!(p.to_string().parse::<Policy>(), Ok(p));
        }
        assert!("write:nothing".parse::<Policy>().is_err());
        assert!("root".parse::<Policy>().is_err());
    }

    #[test]
    fn outsiders_see_nothing_readers_read_members_write() {
        let a = Owner::Projects(vec![ProjectId(1)]);
        let member_a = user(&[(1, Role::Member)]);
        let reader_a = user(&[(1, Role::Reader)]);
        let member_b = user(&[(2, Role::Member)]);
        let write = Policy::Write(ObjectKind::Instance);
        let read = Policy::Read(ObjectKind::Instance);
        assert_eq!(decide(write, Some(&member_a), Some(&a)), Decision::Allow);
        assert_eq!(decide(write, Some(&reader_a), Some(&a)), Decision::Forbidden);
        assert_eq!(decide(read, Some(&reader_a), Some(&a)), Decision::Allow);
        assert_eq!(decide(write, Some(&member_b), Some(&a)), Decision::Hidden);
        assert_eq!(decide(read, Some(&member_b), Some(&a)), Decision::Hidden);
        assert_eq!(decide(read, None, Some(&a)), Decision::Unauthenticated);
        assert_eq!(decide(Policy::Admin, Some(&member_a), None), Decision::Forbidden);
        let admin = Caller { admin: true, ..user(&[]) };
        assert_eq!(decide(Policy::Admin, Some(&admin), None), Decision::Allow);
        assert_eq!(decide(Policy::CreateIn, Some(&member_a), Some(&a)), Decision::Allow);
        assert_eq!(decide(Policy::CreateIn, Some(&member_b), Some(&a)), Decision::Hidden);
        assert_eq!(decide(Policy::CreateIn, Some(&member_a), Some(&Owner::Nobody)), Decision::Forbidden);
    }

    #[test]
    fn public_images_are_read_by_all_and_written_by_admins() {
        let member = user(&[(1, Role::Member)]);
        assert_eq!(decide(Policy::Read(ObjectKind::Image), Some(&member), Some(&Owner::Nobody)), Decision::Allow);
        assert_eq!(decide(Policy::Write(ObjectKind::Image), Some(&member), Some(&Owner::Nobody)), Decision::Forbidden);
        // A free node is nobody's: hidden from users.
        assert_eq!(decide(Policy::Read(ObjectKind::Node), Some(&member), Some(&Owner::Nobody)), Decision::Hidden);
    }

    #[test]
    fn vlan_ranges_parse_and_refuse_nonsense() {
        assert_eq!("200-299".parse::<VlanRange>(), Ok(VlanRange { first: 200, last: 299 }));
        for bad in ["", "200", "0-10", "300-200", "1-4095", "a-b"] {
            assert!(bad.parse::<VlanRange>().is_err(), "{bad}");
        }
    }
}
