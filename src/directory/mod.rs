//! Domain types and rules of the org directory: ids, records, changes, refusals. No I/O.
//!
//! This module says *what* a valid directory and a valid change look like; `store` owns the redb
//! tables and runs the state-dependent rules (existence, last admin, limits, cascades) inside one
//! write transaction, using the shape checks ([`Change::validate`]) and the permission catalog
//! ([`Change::required_permission`]) defined here. Nothing here reads a clock, a file or a random
//! number, so the same change means the same thing on every machine.
//!
//! Where to look: id and field rules in [`ids`], stored records in [`records`], the change
//! vocabulary and permission catalog in [`change`], refusal kinds in [`refusal`].

pub mod catalog;
pub mod change;
pub mod domain;
pub mod ids;
pub mod invitation;
pub mod limits;
pub mod records;
pub mod refusal;
pub mod resource;
pub mod security;
pub mod tokens;

pub use change::{
    ApplyContext, CHANGE_FORMAT, Change, ChangeEnvelope, DEFAULT_ROLES, ImportCounts, Permission,
    is_default_role,
};
pub use domain::{Domain, Enrollment, MembershipRequest, RequestStatus};
pub use invitation::{Invitation, InvitationStatus, Invitee};
pub use limits::{Limits, Plan};
pub use records::{
    App, AppVersion, Collaborator, EmailVerification, Membership, Org, OrgSettings, OrgSettingsPatch, Owner,
    Team, TeamGrant, TeamMember, TermsAcceptance, User, VersionState,
};
pub use refusal::Refusal;
pub use tokens::Token;

/// The role every org keeps at least one member in, and that an org's creator receives.
pub const ADMIN_ROLE: &str = "admin";
