//! gRPC clients for the directory services and the small assertions every directory test
//! repeats.

use tonic::transport::Channel;
use tonic::{Code, Status};
use warden::api::client::connect;
use warden::api::pb;
use warden::api::pb::admin_service_client::AdminServiceClient;
use warden::api::pb::app_service_client::AppServiceClient;
use warden::api::pb::authz_service_client::AuthzServiceClient;
use warden::api::pb::member_service_client::MemberServiceClient;
use warden::api::pb::org_service_client::OrgServiceClient;
use warden::api::pb::team_service_client::TeamServiceClient;
use warden::api::pb::user_service_client::UserServiceClient;

/// An app owner that is an org.
pub fn org_owner(org: &str) -> Option<pb::Owner> {
    Some(pb::Owner {
        owner: Some(pb::owner::Owner::OrgId(org.into())),
    })
}

/// An app owner that is a user (a personal app).
pub fn user_owner(user: &str) -> Option<pb::Owner> {
    Some(pb::Owner {
        owner: Some(pb::owner::Owner::UserId(user.into())),
    })
}

/// One client per service, sharing one connection.
#[derive(Clone)]
pub struct Clients {
    pub org: OrgServiceClient<Channel>,
    pub member: MemberServiceClient<Channel>,
    pub team: TeamServiceClient<Channel>,
    pub app: AppServiceClient<Channel>,
    pub user: UserServiceClient<Channel>,
    pub authz: AuthzServiceClient<Channel>,
    pub admin: AdminServiceClient<Channel>,
}

pub async fn clients(target: &str) -> Clients {
    let ch = connect(target).await.expect("connect");
    Clients {
        org: OrgServiceClient::new(ch.clone()),
        member: MemberServiceClient::new(ch.clone()),
        team: TeamServiceClient::new(ch.clone()),
        app: AppServiceClient::new(ch.clone()),
        user: UserServiceClient::new(ch.clone()),
        authz: AuthzServiceClient::new(ch.clone()),
        admin: AdminServiceClient::new(ch),
    }
}

impl Clients {
    /// The daemon's stats (counts and revision).
    pub async fn stats(&mut self) -> pb::GetStatsResponse {
        self.admin
            .get_stats(pb::GetStatsRequest {})
            .await
            .expect("GetStats")
            .into_inner()
    }

    /// Whether `subject` may do `action` on `resource` in `org`, once the directory has
    /// reached `min_revision`.
    pub async fn check(
        &mut self,
        subject: &str,
        org: &str,
        resource: &str,
        action: &str,
        min_revision: u64,
    ) -> bool {
        self.authz
            .check(pb::CheckRequest {
                subject: subject.into(),
                org: org.into(),
                resource: resource.into(),
                action: action.into(),
                min_revision,
                explain: false,
            })
            .await
            .expect("Check")
            .into_inner()
            .allowed
    }

    pub async fn upsert_user(&mut self, actor: &str, id: &str) -> u64 {
        self.user
            .upsert_user(pb::UpsertUserRequest {
                actor: actor.into(),
                user_id: id.into(),
                email: format!("{id}@example.com"),
                ..Default::default()
            })
            .await
            .expect("UpsertUser")
            .into_inner()
            .revision
    }

    pub async fn add_member(
        &mut self,
        actor: &str,
        org: &str,
        user: &str,
        role: &str,
    ) -> Result<u64, Status> {
        self.member
            .add_member(pb::AddMemberRequest {
                actor: actor.into(),
                org_id: org.into(),
                user_id: user.into(),
                role: role.into(),
            })
            .await
            .map(|r| r.into_inner().revision)
    }
}

/// Assert `result` failed with `code` and a message containing every one of `words`.
#[track_caller]
pub fn assert_refused<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, words: &[&str]) {
    match result {
        Err(s) => {
            assert_eq!(s.code(), code, "unexpected code; message: {}", s.message());
            for w in words {
                assert!(s.message().contains(w), "message lacks {w:?}: {}", s.message());
            }
        }
        Ok(v) => panic!("expected {code:?}, got Ok({v:?})"),
    }
}

/// alice (the demo's acme admin) creates an `org_user` token "ci" of acme with `app:read`:
/// (secret, token id, revision).
pub async fn create_demo_token(target: &str) -> (String, String, u64) {
    let r = warden::api::pb::token_service_client::TokenServiceClient::new(
        connect(target).await.expect("connect"),
    )
    .create_token(pb::CreateTokenRequest {
        actor: "alice".into(),
        owner: org_owner("acme"),
        name: "ci".into(),
        role: "org_user".into(),
        scopes: vec!["app:read".into()],
        expires_at_unix_ms: 0,
    })
    .await
    .expect("CreateToken")
    .into_inner();
    (r.secret, r.token.expect("token").token_id, r.revision)
}
