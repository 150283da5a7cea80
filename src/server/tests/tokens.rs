//! Every TokenService operation (Gafaelfawr's TokenService, TokenRedisStore
//! and TokenDatabaseStore methods, through the service), on each backend,
//! with a clock the tests move.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail by panicking

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use portcullis::app::Stores;
use portcullis::config::{default_scopes, EncryptionConfig, KeyMaterial, TokenPolicy};
use portcullis::model::{HistoryFilter, TokenChange, TokenChanges, TokenData, TokenInfo};
use portcullis::services::{
    Actor, AdminTokenRequest, ManualClock, TokenError, TokenService, UserInfo,
};
use portcullis::storage::{DataCipher, TokenDataStore, TokenMetadataStore};
use portcullis_core::{Scope, Token, TokenType};

mod common;

use common::{backends, Backend, TestStore};
use rstest_reuse::apply;

const START: u64 = 1_900_000_000;
const DAY: u64 = 24 * 3600;

struct Fixture {
    service: Arc<TokenService>,
    data: Arc<dyn TokenDataStore>,
    metadata: Arc<dyn TokenMetadataStore>,
    clock: Arc<ManualClock>,
    store: TestStore,
}

fn policy() -> TokenPolicy {
    TokenPolicy {
        known_scopes: default_scopes()
            .into_iter()
            .map(|(k, v)| (k.parse().unwrap(), v))
            .collect(),
        session_lifetime: 30 * DAY,
        time_to_stale: None,
        last_used_interval: 60,
        history_retention: 30 * DAY,
    }
}

fn keys(active: &str, ids: &[&str]) -> EncryptionConfig {
    EncryptionConfig {
        active_key: active.into(),
        keys: ids
            .iter()
            .map(|id| {
                (
                    id.to_string(),
                    KeyMaterial([id.len() as u8 + id.as_bytes()[1]; 32]),
                )
            })
            .collect(),
    }
}

async fn fixture_with(backend: Backend, policy: TokenPolicy) -> Option<Fixture> {
    let store = TestStore::new(backend).await?;
    Some(
        fixture_in(
            store,
            policy,
            keys("k1", &["k1"]),
            Arc::new(ManualClock::at(START)),
        )
        .await,
    )
}

async fn fixture(backend: Backend) -> Option<Fixture> {
    fixture_with(backend, policy()).await
}

/// The service over `store`, as the companion builds it from configuration.
async fn fixture_in(
    store: TestStore,
    policy: TokenPolicy,
    encryption: EncryptionConfig,
    clock: Arc<ManualClock>,
) -> Fixture {
    let cipher = Arc::new(DataCipher::new(&encryption));
    let stores = Stores::open(&store.storage_config(), cipher, clock.clone())
        .await
        .unwrap();
    let service = Arc::new(TokenService::new(
        stores.data.clone(),
        stores.metadata.clone(),
        stores.history,
        clock.clone(),
        policy,
    ));
    Fixture {
        service,
        data: stores.data,
        metadata: stores.metadata,
        clock,
        store,
    }
}

fn scopes(list: &[&str]) -> Vec<Scope> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().unwrap())
}

fn user(name: &str) -> UserInfo {
    UserInfo {
        username: name.into(),
        email: Some(format!("{name}@example.org")),
        uid: Some(1000),
        ..UserInfo::default()
    }
}

impl Fixture {
    async fn session(&self, name: &str, scope_list: &[&str]) -> (Token, Actor) {
        let token = self
            .service
            .create_session_token(&user(name), scopes(scope_list), ip("192.0.2.1"))
            .await
            .unwrap();
        let data = self.data_of(&token).await;
        (token, Actor::Token(Box::new(data)))
    }

    async fn data_of(&self, token: &Token) -> TokenData {
        self.service
            .get_data(token)
            .await
            .unwrap()
            .expect("valid token")
    }

    async fn valid(&self, token: &Token) -> bool {
        self.service.get_data(token).await.unwrap().is_some()
    }

    async fn admin_token(&self, request: AdminTokenRequest) -> Result<Token, TokenError> {
        self.service
            .create_token_from_admin_request(request, &Actor::Cli, None)
            .await
    }

    async fn history(&self, filter: HistoryFilter) -> Vec<(TokenChange, String)> {
        let page = self
            .service
            .get_change_history(&Actor::Cli, filter, None, None)
            .await
            .unwrap();
        page.entries
            .into_iter()
            .map(|e| (e.action, e.token.to_string()))
            .collect()
    }
}

type ErrorMatcher = fn(&TokenError) -> bool;

fn admin_request(username: &str, token_type: TokenType, name: Option<&str>) -> AdminTokenRequest {
    AdminTokenRequest {
        user: UserInfo {
            username: username.into(),
            ..UserInfo::default()
        },
        token_type,
        token_name: name.map(str::to_owned),
        scopes: scopes(&["read:all"]),
        expires: None,
    }
}

// ---- creation -----------------------------------------------------------

#[apply(backends)]
#[tokio::test]
async fn create_session_token_lasts_the_session_lifetime_and_records_history(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (token, _) = f.session("alice", &["read:all", "user:token"]).await;
    let data = f.data_of(&token).await;
    assert_eq!(data.token_type, TokenType::Session);
    assert_eq!(data.expires, Some(START + 30 * DAY));
    assert_eq!(data.email.as_deref(), Some("alice@example.org"));
    let history = f
        .history(HistoryFilter {
            token: Some(token.key().clone()),
            ..Default::default()
        })
        .await;
    assert_eq!(history, [(TokenChange::Create, token.key().to_string())]);
}

#[apply(backends)]
#[tokio::test]
async fn create_session_token_refuses_unknown_scopes_and_bad_usernames(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let unknown = f
        .service
        .create_session_token(&user("alice"), scopes(&["launch:missiles"]), None)
        .await;
    assert!(matches!(unknown, Err(TokenError::UnknownScope(s)) if s == "launch:missiles"));
    let bad = f
        .service
        .create_session_token(&user("Alice"), vec![], None)
        .await;
    assert!(matches!(bad, Err(TokenError::InvalidUsername(_))));
}

#[apply(backends)]
#[tokio::test]
async fn create_user_token_is_for_the_owner_with_user_token_scope_and_held_scopes(
    backend: Backend,
) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (_, alice) = f.session("alice", &["read:all", "user:token"]).await;
    let made = f
        .service
        .create_user_token(
            &alice,
            "alice",
            "laptop".into(),
            scopes(&["read:all"]),
            None,
            None,
        )
        .await
        .unwrap();
    let data = f.data_of(&made).await;
    assert_eq!(data.token_type, TokenType::User);
    assert_eq!(
        data.expires,
        Some(START + 30 * DAY),
        "defaults to the authenticating token's expiry"
    );
    assert_eq!(
        data.email.as_deref(),
        Some("alice@example.org"),
        "user details come from the session"
    );

    let for_bob = f
        .service
        .create_user_token(&alice, "bob", "x".into(), vec![], None, None)
        .await;
    assert!(matches!(for_bob, Err(TokenError::PermissionDenied(_))));
    let wider = f
        .service
        .create_user_token(
            &alice,
            "alice",
            "wide".into(),
            scopes(&["write:all"]),
            None,
            None,
        )
        .await;
    assert!(matches!(wider, Err(TokenError::ScopesNotHeld(s)) if s == ["write:all"]));
    let too_soon = f
        .service
        .create_user_token(
            &alice,
            "alice",
            "soon".into(),
            vec![],
            Some(Some(START + 299)),
            None,
        )
        .await;
    assert!(matches!(too_soon, Err(TokenError::ExpiresTooSoon)));
    let (_, carol) = f.session("carol", &["read:all"]).await;
    let no_scope = f
        .service
        .create_user_token(&carol, "carol", "x".into(), vec![], None, None)
        .await;
    assert!(matches!(no_scope, Err(TokenError::PermissionDenied(_))));
    let bootstrap = f
        .service
        .create_user_token(&Actor::Bootstrap, "alice", "x".into(), vec![], None, None)
        .await;
    assert!(matches!(bootstrap, Err(TokenError::PermissionDenied(_))));
}

#[apply(backends)]
#[tokio::test]
async fn token_names_are_unique_per_user_even_when_racing(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (_, alice) = f.session("alice", &["read:all", "user:token"]).await;
    let mut racers = Vec::new();
    for _ in 0..20 {
        let service = f.service.clone();
        let alice = alice.clone();
        racers.push(tokio::spawn(async move {
            service
                .create_user_token(&alice, "alice", "same".into(), vec![], None, None)
                .await
        }));
    }
    let mut made = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => made += 1,
            Err(TokenError::DuplicateName { username, name }) => {
                assert_eq!((username.as_str(), name.as_str()), ("alice", "same"))
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(made, 1);
    // Another user may use the name.
    let (_, bob) = f.session("bob", &["user:token"]).await;
    assert!(f
        .service
        .create_user_token(&bob, "bob", "same".into(), vec![], None, None)
        .await
        .is_ok());
    // No data was left behind by the losers.
    assert!(f.service.audit(false).await.unwrap().problems.is_empty());
}

#[apply(backends)]
#[tokio::test]
async fn create_token_from_admin_request_needs_an_admin_and_follows_type_rules(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let service = f
        .admin_token(admin_request("bot-ci", TokenType::Service, None))
        .await
        .unwrap();
    assert_eq!(f.data_of(&service).await.token_type, TokenType::Service);
    assert!(f
        .admin_token(admin_request("bob", TokenType::User, Some("for-bob")))
        .await
        .is_ok());

    let cases: Vec<(AdminTokenRequest, ErrorMatcher)> = vec![
        (admin_request("ci", TokenType::Service, None), |e| {
            matches!(e, TokenError::ServiceNeedsBotName)
        }),
        (admin_request("bot-x", TokenType::User, Some("n")), |e| {
            matches!(e, TokenError::BotNameNeedsService)
        }),
        (admin_request("bob", TokenType::User, None), |e| {
            matches!(e, TokenError::NameRequired)
        }),
        (admin_request("bob", TokenType::Session, None), |e| {
            matches!(e, TokenError::WrongTokenType("session"))
        }),
    ];
    for (request, expected) in cases {
        let e = f.admin_token(request).await.unwrap_err();
        assert!(expected(&e), "{e:?}");
    }
    let (_, alice) = f.session("alice", &["read:all"]).await;
    let denied = f
        .service
        .create_token_from_admin_request(
            admin_request("bot-ci", TokenType::Service, None),
            &alice,
            None,
        )
        .await;
    assert!(matches!(denied, Err(TokenError::PermissionDenied(_))));
    let (_, admin) = f.session("root", &["admin:token"]).await;
    let allowed = f
        .service
        .create_token_from_admin_request(
            admin_request("bot-ci", TokenType::Service, Some("ci")),
            &admin,
            None,
        )
        .await;
    assert!(allowed.is_ok());
    assert!(f
        .admin_token(admin_request("bot-ci", TokenType::Service, None))
        .await
        .is_ok());
    assert!(f
        .service
        .create_token_from_admin_request(
            admin_request("bot-y", TokenType::Service, None),
            &Actor::Bootstrap,
            None
        )
        .await
        .is_ok());
}

#[apply(backends)]
#[tokio::test]
async fn create_oidc_token_is_a_scopeless_child_living_its_own_lifetime_within_the_session(
    backend: Backend,
) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (session, _) = f.session("alice", &["read:all", "user:token"]).await;
    let parent = f.data_of(&session).await;
    let oidc = f
        .service
        .create_oidc_token(&parent, 3600, None)
        .await
        .unwrap();
    let data = f.data_of(&oidc).await;
    assert_eq!(data.token_type, TokenType::Oidc);
    assert!(data.scopes.is_empty(), "the session's powers stay with it");
    assert_eq!(data.expires, Some(START + 3600));
    // Never past the session's end.
    let long = f
        .service
        .create_oidc_token(&parent, 100 * 365 * 24 * 3600, None)
        .await
        .unwrap();
    assert_eq!(f.data_of(&long).await.expires, parent.expires);
    let info = f
        .service
        .get_token_info_unchecked(oidc.key(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.parent.as_ref(), Some(session.key()));
    // Two calls, two tokens: OIDC tokens are not reused.
    assert_ne!(
        f.service
            .create_oidc_token(&parent, 3600, None)
            .await
            .unwrap()
            .key(),
        oidc.key()
    );
}

// ---- get-or-create of children -----------------------------------------

#[apply(backends)]
#[tokio::test]
async fn get_internal_token_reuses_a_child_while_it_has_the_minimum_lifetime(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (session, _) = f.session("alice", &["read:all", "write:all"]).await;
    let parent = f.data_of(&session).await;
    let get = |s: &'static [&'static str], min: Option<u64>| {
        let service = f.service.clone();
        let parent = parent.clone();
        async move {
            service
                .get_internal_token(&parent, "tap", scopes(s), None, min)
                .await
        }
    };
    let first = get(&["read:all"], None).await.unwrap();
    assert_eq!(
        get(&["read:all"], None).await.unwrap().key(),
        first.key(),
        "reused"
    );
    assert_ne!(
        get(&["read:all", "write:all"], None).await.unwrap().key(),
        first.key(),
        "other scopes"
    );
    let other_service = f
        .service
        .get_internal_token(&parent, "portal", scopes(&["read:all"]), None, None)
        .await
        .unwrap();
    assert_ne!(other_service.key(), first.key());

    let data = f.data_of(&first).await;
    assert_eq!(data.token_type, TokenType::Internal);
    assert_eq!(data.expires, parent.expires, "never outlives its parent");
    let info = f
        .service
        .get_token_info_unchecked(first.key(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.service.as_deref(), Some("tap"));

    // With 2 days left on the child, asking for 3 makes a new one.
    f.clock.advance(std::time::Duration::from_secs(28 * DAY));
    assert_eq!(
        get(&["read:all"], Some(DAY)).await.unwrap().key(),
        first.key()
    );
    assert!(matches!(
        get(&["read:all"], Some(3 * DAY)).await,
        Err(TokenError::InsufficientLifetime)
    ));
    assert!(matches!(
        f.service
            .get_internal_token(&parent, "tap", scopes(&["admin:token"]), None, None)
            .await,
        Err(TokenError::ScopesNotHeld(_))
    ));
}

#[apply(backends)]
#[tokio::test]
async fn get_notebook_token_reuses_and_carries_all_the_parents_scopes(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (session, _) = f.session("alice", &["exec:notebook", "read:all"]).await;
    let parent = f.data_of(&session).await;
    let first = f
        .service
        .get_notebook_token(&parent, ip("192.0.2.9"), None)
        .await
        .unwrap();
    let again = f
        .service
        .get_notebook_token(&parent, None, Some(3600))
        .await
        .unwrap();
    assert_eq!(first.key(), again.key());
    let data = f.data_of(&first).await;
    assert_eq!(data.token_type, TokenType::Notebook);
    assert_eq!(data.scopes, parent.scopes);
}

#[apply(backends)]
#[tokio::test]
async fn fifty_concurrent_get_or_creates_yield_exactly_one_child(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (session, _) = f.session("alice", &["read:all"]).await;
    let parent = f.data_of(&session).await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let service = f.service.clone();
        let parent = parent.clone();
        tasks.push(tokio::spawn(async move {
            service
                .get_internal_token(&parent, "tap", scopes(&["read:all"]), None, None)
                .await
        }));
    }
    let mut keys = HashSet::new();
    for task in tasks {
        keys.insert(task.await.unwrap().unwrap().expose());
    }
    assert_eq!(keys.len(), 1, "one child for fifty requests");
    assert_eq!(
        f.metadata.get_children(session.key()).await.unwrap().len(),
        1
    );
    assert_eq!(
        f.data.list().await.unwrap().len(),
        2,
        "no stray data from the losers"
    );
    let created = f
        .history(HistoryFilter {
            token_type: Some(TokenType::Internal),
            ..Default::default()
        })
        .await;
    assert_eq!(created.len(), 1);
}

// ---- reading, listing, changing, deleting ------------------------------

#[apply(backends)]
#[tokio::test]
async fn get_token_info_is_for_the_owner_or_an_admin(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (token, alice) = f.session("alice", &["read:all", "user:token"]).await;
    let (_, bob) = f.session("bob", &["read:all", "user:token"]).await;
    let info = f
        .service
        .get_token_info(token.key(), &alice, "alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.username, "alice");
    assert_eq!(info.token_type, TokenType::Session);
    assert!(matches!(
        f.service.get_token_info(token.key(), &bob, "alice").await,
        Err(TokenError::PermissionDenied(_))
    ));
    assert!(
        f.service
            .get_token_info(token.key(), &bob, "bob")
            .await
            .unwrap()
            .is_none(),
        "not bob's token"
    );
    assert!(f
        .service
        .get_token_info(token.key(), &Actor::Bootstrap, "alice")
        .await
        .unwrap()
        .is_some());
    assert!(f
        .service
        .get_token_info_unchecked(token.key(), Some("bob"))
        .await
        .unwrap()
        .is_none());
    assert!(f
        .service
        .get_token_info_unchecked(token.key(), None)
        .await
        .unwrap()
        .is_some());
}

#[apply(backends)]
#[tokio::test]
async fn a_token_without_user_token_manages_nothing_not_even_its_owners(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (session, owner) = f.session("alice", &["read:all", "user:token"]).await;
    let parent = f.data_of(&session).await;
    let (_, reader) = f.session("alice", &["read:all"]).await;
    // A delegated internal token with no scopes: the caller's own user.
    let internal = f
        .service
        .get_internal_token(&parent, "tap", vec![], None, None)
        .await
        .unwrap();
    let delegated = Actor::Token(Box::new(f.data_of(&internal).await));
    let own = HistoryFilter {
        username: Some("alice".into()),
        ..Default::default()
    };
    for actor in [&reader, &delegated] {
        let denied = |r: Result<(), TokenError>| {
            assert!(matches!(r, Err(TokenError::PermissionDenied(_))), "{r:?}")
        };
        denied(f.service.list_tokens(actor, Some("alice")).await.map(drop));
        denied(
            f.service
                .get_token_info(session.key(), actor, "alice")
                .await
                .map(drop),
        );
        denied(
            f.service
                .get_change_history(actor, own.clone(), None, None)
                .await
                .map(drop),
        );
        denied(
            f.service
                .delete_token(session.key(), actor, "alice", None)
                .await
                .map(drop),
        );
    }
    assert!(f.valid(&session).await, "nothing was revoked");
    assert!(f.service.list_tokens(&owner, Some("alice")).await.is_ok());
}

#[apply(backends)]
#[tokio::test]
async fn only_a_session_makes_user_tokens(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let all = &["read:all", "user:token", "exec:notebook"];
    let (session, owner) = f.session("alice", all).await;
    let parent = f.data_of(&session).await;
    let notebook = f
        .service
        .get_notebook_token(&parent, None, None)
        .await
        .unwrap();
    let notebook_data = f.data_of(&notebook).await;
    let internal = f
        .service
        .get_internal_token(&notebook_data, "tap", scopes(all), None, None)
        .await
        .unwrap();
    let oidc = f
        .service
        .create_oidc_token(&parent, 3600, None)
        .await
        .unwrap();
    let user = f
        .service
        .create_user_token(&owner, "alice", "made".into(), scopes(all), None, None)
        .await
        .unwrap();
    for child in [&notebook, &internal, &oidc, &user] {
        let actor = Actor::Token(Box::new(f.data_of(child).await));
        let made = f
            .service
            .create_user_token(
                &actor,
                "alice",
                "escape".into(),
                scopes(&["read:all"]),
                None,
                None,
            )
            .await;
        assert!(
            matches!(made, Err(TokenError::PermissionDenied(_))),
            "{made:?}"
        );
    }
}

#[apply(backends)]
#[tokio::test]
async fn list_tokens_shows_users_their_own_and_admins_everything(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (_, alice) = f.session("alice", &["read:all", "user:token"]).await;
    f.session("bob", &["read:all"]).await;
    assert_eq!(
        f.service
            .list_tokens(&alice, Some("alice"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(matches!(
        f.service.list_tokens(&alice, Some("bob")).await,
        Err(TokenError::PermissionDenied(_))
    ));
    assert!(matches!(
        f.service.list_tokens(&alice, None).await,
        Err(TokenError::PermissionDenied(_))
    ));
    assert_eq!(
        f.service
            .list_tokens(&Actor::Bootstrap, None)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[apply(backends)]
#[tokio::test]
async fn narrowing_a_token_narrows_every_descendant_with_history_for_each(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let mut request = admin_request("bob", TokenType::User, Some("wide"));
    request.scopes = scopes(&["read:all", "write:all", "exec:notebook"]);
    let token = f.admin_token(request).await.unwrap();
    let parent = f.data_of(&token).await;
    let notebook = f
        .service
        .get_notebook_token(&parent, None, None)
        .await
        .unwrap();
    let notebook_data = f.data_of(&notebook).await;
    let grandchild = f
        .service
        .get_internal_token(&notebook_data, "tap", scopes(&["write:all"]), None, None)
        .await
        .unwrap();
    let cursor = f.service.token_changes(None).await.unwrap().cursor;
    let changes = TokenChanges {
        scopes: Some(scopes(&["read:all", "exec:notebook"])),
        expires: Some(Some(START + DAY)),
        ..TokenChanges::default()
    };
    f.service
        .modify_token(token.key(), &Actor::Bootstrap, "bob", changes, None)
        .await
        .unwrap();
    let child = f.data_of(&notebook).await;
    assert_eq!(child.scopes, scopes(&["exec:notebook", "read:all"]));
    assert_eq!(child.expires, Some(START + DAY));
    let grand = f.data_of(&grandchild).await;
    assert!(
        grand.scopes.is_empty(),
        "write:all is gone from the whole tree"
    );
    assert_eq!(grand.expires, Some(START + DAY));
    for key in [notebook.key(), grandchild.key()] {
        let info = f
            .service
            .get_token_info_unchecked(key, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(info.expires, Some(START + DAY), "metadata too");
    }
    let feed = f.service.token_changes(Some(cursor)).await.unwrap();
    for key in [token.key(), notebook.key(), grandchild.key()] {
        assert!(feed.keys.contains(key), "{feed:?}");
    }
}

#[apply(backends)]
#[tokio::test]
async fn only_user_and_service_tokens_can_be_modified(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (session, _) = f.session("alice", &["read:all"]).await;
    let parent = f.data_of(&session).await;
    let notebook = f
        .service
        .get_notebook_token(&parent, None, None)
        .await
        .unwrap();
    for token in [&session, &notebook] {
        let changes = TokenChanges {
            expires: Some(None),
            ..TokenChanges::default()
        };
        let modified = f
            .service
            .modify_token(token.key(), &Actor::Bootstrap, "alice", changes, None)
            .await;
        assert!(
            matches!(modified, Err(TokenError::WrongTokenType(_))),
            "{modified:?}"
        );
    }
    assert_eq!(f.data_of(&session).await.expires, parent.expires);
}

#[apply(backends)]
#[tokio::test]
async fn modify_token_changes_both_stores_and_records_the_old_values(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let token = f
        .admin_token(admin_request("bob", TokenType::User, Some("old-name")))
        .await
        .unwrap();
    let (_, alice) = f.session("alice", &["read:all"]).await;
    let changes = TokenChanges {
        token_name: Some("new-name".into()),
        scopes: Some(scopes(&["write:all", "read:all"])),
        expires: Some(Some(START + DAY)),
    };
    assert!(matches!(
        f.service
            .modify_token(token.key(), &alice, "bob", changes.clone(), None)
            .await,
        Err(TokenError::PermissionDenied(_))
    ));
    let info = f
        .service
        .modify_token(
            token.key(),
            &Actor::Bootstrap,
            "bob",
            changes,
            ip("2001:db8::7"),
        )
        .await
        .unwrap();
    assert_eq!(info.token_name.as_deref(), Some("new-name"));
    assert_eq!(info.scopes, scopes(&["read:all", "write:all"]));
    let data = f.data_of(&token).await;
    assert_eq!(
        data.scopes, info.scopes,
        "the data store, which checks use, changed too"
    );
    assert_eq!(data.expires, Some(START + DAY));

    let page = f
        .service
        .get_change_history(
            &Actor::Bootstrap,
            HistoryFilter {
                token: Some(token.key().clone()),
                ..Default::default()
            },
            None,
            None,
        )
        .await
        .unwrap();
    let edit = &page.entries[0];
    assert_eq!(edit.action, TokenChange::Edit);
    assert_eq!(edit.old_token_name.as_deref(), Some("old-name"));
    assert_eq!(edit.old_scopes, Some(scopes(&["read:all"])));
    assert_eq!(edit.old_expires, None);
    assert_eq!(edit.actor.as_deref(), Some("<bootstrap>"));

    let no_expire = TokenChanges {
        expires: Some(None),
        ..Default::default()
    };
    f.service
        .modify_token(token.key(), &Actor::Cli, "bob", no_expire, None)
        .await
        .unwrap();
    assert_eq!(f.data_of(&token).await.expires, None);

    f.admin_token(admin_request("bob", TokenType::User, Some("taken")))
        .await
        .unwrap();
    let clash = TokenChanges {
        token_name: Some("taken".into()),
        ..Default::default()
    };
    assert!(matches!(
        f.service
            .modify_token(token.key(), &Actor::Cli, "bob", clash, None)
            .await,
        Err(TokenError::DuplicateName { .. })
    ));
    let unknown = TokenChanges {
        scopes: Some(scopes(&["launch:missiles"])),
        ..Default::default()
    };
    assert!(matches!(
        f.service
            .modify_token(token.key(), &Actor::Cli, "bob", unknown, None)
            .await,
        Err(TokenError::UnknownScope(_))
    ));
    assert!(matches!(
        f.service
            .modify_token(
                token.key(),
                &Actor::Cli,
                "carol",
                TokenChanges::default(),
                None
            )
            .await,
        Err(TokenError::NotFound)
    ));
}

#[apply(backends)]
#[tokio::test]
async fn delete_token_revokes_children_recursively_with_history_for_each(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (session, alice) = f
        .session("alice", &["read:all", "exec:notebook", "user:token"])
        .await;
    let parent = f.data_of(&session).await;
    let notebook = f
        .service
        .get_notebook_token(&parent, None, None)
        .await
        .unwrap();
    let notebook_data = f.data_of(&notebook).await;
    let internal = f
        .service
        .get_internal_token(&notebook_data, "tap", scopes(&["read:all"]), None, None)
        .await
        .unwrap();
    let (_, bob) = f.session("bob", &["read:all"]).await;

    assert!(matches!(
        f.service
            .delete_token(session.key(), &bob, "alice", None)
            .await,
        Err(TokenError::PermissionDenied(_))
    ));
    assert!(f
        .service
        .delete_token(session.key(), &alice, "alice", ip("198.51.100.4"))
        .await
        .unwrap());
    for token in [&session, &notebook, &internal] {
        assert!(!f.valid(token).await, "{token} still valid");
        assert!(f
            .service
            .get_token_info_unchecked(token.key(), None)
            .await
            .unwrap()
            .is_none());
    }
    let revoked: HashSet<String> = f
        .history(HistoryFilter {
            actor: Some("alice".into()),
            ..Default::default()
        })
        .await
        .into_iter()
        .filter(|(action, _)| *action == TokenChange::Revoke)
        .map(|(_, key)| key)
        .collect();
    let expected: HashSet<String> = [&session, &notebook, &internal]
        .iter()
        .map(|t| t.key().to_string())
        .collect();
    assert_eq!(revoked, expected);
    assert!(
        !f.service
            .delete_token(session.key(), &alice, "alice", None)
            .await
            .unwrap(),
        "already gone"
    );
}

// ---- lifetime: expiry, staleness, last used -----------------------------

#[apply(backends)]
#[tokio::test]
async fn expire_tokens_removes_expired_tokens_with_expire_history(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let short = AdminTokenRequest {
        expires: Some(START + 600),
        ..admin_request("bob", TokenType::User, Some("short"))
    };
    let short = f.admin_token(short).await.unwrap();
    let long = f
        .admin_token(admin_request("bob", TokenType::User, Some("long")))
        .await
        .unwrap();
    assert_eq!(f.service.expire_tokens().await.unwrap(), 0);
    f.clock.advance(std::time::Duration::from_secs(600));
    assert!(
        !f.valid(&short).await,
        "invalid at its expiry even before bookkeeping"
    );
    assert_eq!(f.service.expire_tokens().await.unwrap(), 1);
    assert!(f.valid(&long).await);
    assert!(f
        .service
        .get_token_info_unchecked(short.key(), None)
        .await
        .unwrap()
        .is_none());
    assert!(f.data.get(short.key()).await.unwrap().is_none());
    let history = f
        .history(HistoryFilter {
            token: Some(short.key().clone()),
            ..Default::default()
        })
        .await;
    assert_eq!(history[0].0, TokenChange::Expire);
}

#[apply(backends)]
#[tokio::test]
async fn idle_tokens_go_stale_and_are_removed(backend: Backend) {
    let Some(f) = fixture_with(
        backend,
        TokenPolicy {
            time_to_stale: Some(3600),
            ..policy()
        },
    )
    .await
    else {
        return;
    };
    let used = f
        .admin_token(admin_request("bob", TokenType::User, Some("used")))
        .await
        .unwrap();
    let idle = f
        .admin_token(admin_request("bob", TokenType::User, Some("idle")))
        .await
        .unwrap();
    for _ in 0..3 {
        f.clock.advance(std::time::Duration::from_secs(3000));
        assert!(f.valid(&used).await, "use within the window keeps it alive");
    }
    assert!(!f.valid(&idle).await, "unused for 9000 s > 3600 s");
    assert!(
        f.service
            .get_token_info_unchecked(idle.key(), None)
            .await
            .unwrap()
            .is_none(),
        "and removed"
    );
    let history = f
        .history(HistoryFilter {
            token: Some(idle.key().clone()),
            ..Default::default()
        })
        .await;
    assert_eq!(history[0].0, TokenChange::Expire);
}

#[apply(backends)]
#[tokio::test]
async fn last_used_is_written_at_most_once_per_interval(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let token = f
        .admin_token(admin_request("bob", TokenType::User, Some("t")))
        .await
        .unwrap();
    let last_used = || async {
        f.service
            .get_token_info_unchecked(token.key(), None)
            .await
            .unwrap()
            .unwrap()
            .last_used
    };
    assert_eq!(last_used().await, None);
    f.clock.advance(std::time::Duration::from_secs(60));
    assert!(f.valid(&token).await);
    assert_eq!(last_used().await, Some(START + 60));
    f.clock.advance(std::time::Duration::from_secs(59));
    assert!(f.valid(&token).await);
    assert_eq!(
        last_used().await,
        Some(START + 60),
        "not written again within 60 s"
    );
    f.clock.advance(std::time::Duration::from_secs(1));
    assert!(f.valid(&token).await);
    assert_eq!(last_used().await, Some(START + 120));
}

// ---- history -------------------------------------------------------------

#[apply(backends)]
#[tokio::test]
async fn change_history_filters_by_every_field(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (a, alice) = f.session("alice", &["read:all", "user:token"]).await;
    f.clock.advance(std::time::Duration::from_secs(100));
    let user_token = f
        .service
        .create_user_token(&alice, "alice", "cli".into(), vec![], None, ip("10.1.2.3"))
        .await
        .unwrap();
    f.clock.advance(std::time::Duration::from_secs(100));
    let bot = f
        .service
        .create_token_from_admin_request(
            admin_request("bot-x", TokenType::Service, None),
            &Actor::Bootstrap,
            ip("2001:db8::1"),
        )
        .await
        .unwrap();
    let parent = f.data_of(&a).await;
    let child = f
        .service
        .get_internal_token(&parent, "tap", vec![], ip("10.1.9.9"), None)
        .await
        .unwrap();

    let k = |t: &Token| t.key().to_string();
    let net = |cidr: &str| Some(cidr.parse().unwrap());
    let cases: Vec<(HistoryFilter, Vec<String>)> = vec![
        (
            HistoryFilter {
                since: Some(START + 100),
                until: Some(START + 100),
                ..Default::default()
            },
            vec![k(&user_token)],
        ),
        (
            HistoryFilter {
                username: Some("bot-x".into()),
                ..Default::default()
            },
            vec![k(&bot)],
        ),
        (
            HistoryFilter {
                actor: Some("<bootstrap>".into()),
                ..Default::default()
            },
            vec![k(&bot)],
        ),
        // A token and its children.
        (
            HistoryFilter {
                key: Some(a.key().clone()),
                ..Default::default()
            },
            vec![k(&child), k(&a)],
        ),
        (
            HistoryFilter {
                token: Some(a.key().clone()),
                ..Default::default()
            },
            vec![k(&a)],
        ),
        (
            HistoryFilter {
                token_type: Some(TokenType::User),
                ..Default::default()
            },
            vec![k(&user_token)],
        ),
        (
            HistoryFilter {
                ip_or_cidr: net("10.1.0.0/16"),
                ..Default::default()
            },
            vec![k(&child), k(&user_token)],
        ),
        (
            HistoryFilter {
                ip_or_cidr: net("2001:db8::1/128"),
                ..Default::default()
            },
            vec![k(&bot)],
        ),
    ];
    for (filter, expected) in cases {
        let described = format!("{filter:?}");
        let found: Vec<String> = f
            .history(filter)
            .await
            .into_iter()
            .map(|(_, key)| key)
            .collect();
        assert_eq!(found, expected, "{described}");
    }

    let (_, bob) = f.session("bob", &["user:token"]).await;
    let others = f
        .service
        .get_change_history(
            &bob,
            HistoryFilter {
                username: Some("alice".into()),
                ..Default::default()
            },
            None,
            None,
        )
        .await;
    assert!(matches!(others, Err(TokenError::PermissionDenied(_))));
    let all = f
        .service
        .get_change_history(&bob, HistoryFilter::default(), None, None)
        .await;
    assert!(matches!(all, Err(TokenError::PermissionDenied(_))));
    let own = f
        .service
        .get_change_history(
            &bob,
            HistoryFilter {
                username: Some("bob".into()),
                ..Default::default()
            },
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(own.entries.len(), 1);
}

#[apply(backends)]
#[tokio::test]
async fn history_pages_stay_correct_while_entries_are_added(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    for i in 0..7 {
        f.admin_token(admin_request(
            "bob",
            TokenType::User,
            Some(&format!("t{i}")),
        ))
        .await
        .unwrap();
    }
    let page = |cursor| {
        f.service
            .get_change_history(&Actor::Cli, HistoryFilter::default(), cursor, Some(3))
    };
    let first = page(None).await.unwrap();
    assert_eq!(first.entries.len(), 3);
    assert!(first.previous.is_none());
    // New entries arrive between pages: the next page is unaffected.
    for i in 7..10 {
        f.admin_token(admin_request(
            "bob",
            TokenType::User,
            Some(&format!("t{i}")),
        ))
        .await
        .unwrap();
    }
    let second = page(first.next).await.unwrap();
    let third = page(second.next).await.unwrap();
    assert_eq!(third.entries.len(), 1);
    assert!(third.next.is_none());
    let names = |p: &portcullis::model::HistoryPage| {
        p.entries
            .iter()
            .map(|e| e.token_name.clone().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        [names(&first), names(&second), names(&third)].concat(),
        ["t6", "t5", "t4", "t3", "t2", "t1", "t0"]
    );
    // And back again from the second page.
    let back = page(second.previous).await.unwrap();
    assert_eq!(names(&back), names(&first));
    // Cursors travel as opaque strings.
    let text = first.next.unwrap().encode();
    assert_eq!(
        portcullis::model::HistoryCursor::decode(&text),
        Ok(first.next.unwrap())
    );
}

#[apply(backends)]
#[tokio::test]
async fn truncate_history_drops_entries_older_than_the_retention(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    f.admin_token(admin_request("bob", TokenType::User, Some("old")))
        .await
        .unwrap();
    f.clock.advance(std::time::Duration::from_secs(31 * DAY));
    f.admin_token(admin_request("bob", TokenType::User, Some("new")))
        .await
        .unwrap();
    assert_eq!(f.service.truncate_history().await.unwrap(), 1);
    assert_eq!(f.history(HistoryFilter::default()).await.len(), 1);
}

// ---- upkeep ----------------------------------------------------------------

#[apply(backends)]
#[tokio::test]
async fn gather_state_metrics_counts_sessions_by_user_and_user_tokens(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    f.session("alice", &[]).await;
    f.session("alice", &[]).await;
    f.session("bob", &[]).await;
    f.admin_token(admin_request("bob", TokenType::User, Some("a")))
        .await
        .unwrap();
    let metrics = f.service.gather_state_metrics().await.unwrap();
    assert_eq!((metrics.active_sessions, metrics.user_tokens), (2, 1));
}

#[apply(backends)]
#[tokio::test]
async fn delete_all_tokens_invalidates_every_token(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (a, _) = f.session("alice", &[]).await;
    let b = f
        .admin_token(admin_request("bot-x", TokenType::Service, None))
        .await
        .unwrap();
    // One with data but no metadata: still heard of at the edge.
    let stray = f
        .admin_token(admin_request("carol", TokenType::User, Some("stray")))
        .await
        .unwrap();
    f.metadata.delete(stray.key(), None).await.unwrap();
    let cursor = f.service.token_changes(None).await.unwrap().cursor;
    f.service.delete_all_tokens().await.unwrap();
    assert!(!f.valid(&a).await && !f.valid(&b).await);
    assert!(f.data.list().await.unwrap().is_empty());
    let feed = f.service.token_changes(Some(cursor)).await.unwrap();
    for token in [&a, &b, &stray] {
        assert!(feed.keys.contains(token.key()), "{feed:?}");
    }
}

#[apply(backends)]
#[tokio::test]
async fn audit_finds_planted_inconsistencies_and_fix_repairs_what_it_can(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (session, _) = f.session("alice", &["read:all"]).await;
    let parent = f.data_of(&session).await;
    let child = f
        .service
        .get_notebook_token(&parent, None, None)
        .await
        .unwrap();
    let healthy = f
        .admin_token(admin_request("bob", TokenType::User, Some("ok")))
        .await
        .unwrap();
    assert_eq!(
        f.service.audit(false).await.unwrap().problems,
        Vec::<String>::new()
    );

    // 1. Data without metadata.
    let stray = f
        .admin_token(admin_request("carol", TokenType::User, Some("stray")))
        .await
        .unwrap();
    f.metadata.delete(stray.key(), None).await.unwrap();
    // 2. Metadata without data.
    let ghost = f
        .admin_token(admin_request("dave", TokenType::User, Some("ghost")))
        .await
        .unwrap();
    f.data.delete(ghost.key()).await.unwrap();
    // 3. Metadata scopes differ from the data.
    let skewed = TokenChanges {
        scopes: Some(scopes(&["write:all"])),
        ..Default::default()
    };
    f.metadata
        .modify(healthy.key(), &skewed, &|_| None)
        .await
        .unwrap();
    // 4. A child outliving its parent, in both stores.
    let forever = TokenChanges {
        expires: Some(None),
        ..Default::default()
    };
    f.metadata
        .modify(child.key(), &forever, &|_| None)
        .await
        .unwrap();
    let child_data = f.data_of(&child).await;
    f.data
        .store(&TokenData {
            expires: None,
            ..child_data
        })
        .await
        .unwrap();
    // 5. An orphan: an internal token whose parent record is gone.
    let orphan_parent = f
        .admin_token(admin_request("erin", TokenType::User, Some("p")))
        .await
        .unwrap();
    let orphan_data = f.data_of(&orphan_parent).await;
    let orphan = f
        .service
        .get_internal_token(&orphan_data, "tap", vec![], None, None)
        .await
        .unwrap();
    f.metadata.delete(orphan_parent.key(), None).await.unwrap();
    f.data.delete(orphan_parent.key()).await.unwrap();
    // 6. An unknown scope (not fixable: the audit cannot guess intent).
    let launch = TokenChanges {
        scopes: Some(scopes(&["launch:missiles"])),
        ..Default::default()
    };
    f.metadata
        .modify(session.key(), &launch, &|_| None)
        .await
        .unwrap();
    f.data
        .store(&TokenData {
            scopes: scopes(&["launch:missiles"]),
            ..parent.clone()
        })
        .await
        .unwrap();
    // Data without metadata this young may be a creation under way: left
    // alone. The planted stray is older.
    f.clock.advance(std::time::Duration::from_secs(
        portcullis::services::tokens::CREATION_GRACE_SECONDS + 1,
    ));
    let under_way = f
        .admin_token(admin_request("carol", TokenType::User, Some("under-way")))
        .await
        .unwrap();
    f.metadata.delete(under_way.key(), None).await.unwrap();

    let report = f.service.audit(false).await.unwrap();
    let mentions = |what: &Token, text: &str| {
        report
            .problems
            .iter()
            .any(|p| p.contains(what.key().as_str()) && p.contains(text))
    };
    assert!(mentions(&stray, "data without metadata"), "{report:?}");
    assert!(!mentions(&under_way, "data"), "{report:?}");
    assert!(mentions(&ghost, "metadata without data"), "{report:?}");
    assert!(mentions(&healthy, "differ"), "{report:?}");
    assert!(mentions(&child, "outlives its parent"), "{report:?}");
    assert!(mentions(&orphan, "without a parent"), "{report:?}");
    assert!(mentions(&session, "unknown scopes"), "{report:?}");
    assert!(report.fixed.is_empty());

    let cursor = f.service.token_changes(None).await.unwrap().cursor;
    let fixed = f.service.audit(true).await.unwrap();
    assert_eq!(fixed.fixed.len(), 5, "{fixed:?}");
    // Every token the fix removed or shortened reaches the edge caches.
    let feed = f.service.token_changes(Some(cursor)).await.unwrap();
    for token in [&stray, &ghost, &orphan, &child] {
        assert!(feed.keys.contains(token.key()), "{feed:?}");
    }
    assert_eq!(fixed.problems.len(), 1, "{fixed:?}");
    assert!(!f.valid(&stray).await);
    assert!(!f.valid(&orphan).await);
    assert_eq!(
        f.service
            .get_token_info_unchecked(healthy.key(), None)
            .await
            .unwrap()
            .unwrap()
            .scopes,
        scopes(&["read:all"])
    );
    assert_eq!(
        f.service
            .get_token_info_unchecked(child.key(), None)
            .await
            .unwrap()
            .unwrap()
            .expires,
        parent.expires
    );
    let after = f.service.audit(false).await.unwrap();
    assert_eq!(after.problems.len(), 1);
    assert!(after.problems[0].contains("unknown scopes"));
}

#[apply(backends)]
#[tokio::test]
async fn key_rotation_reads_old_ciphertext_and_reseals_everything(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let old = f
        .admin_token(admin_request("bob", TokenType::User, Some("old")))
        .await
        .unwrap();
    let store = f.store;
    let clock = f.clock.clone();
    drop(f.service);

    // Add k2 and make it active: old data still opens, new data uses k2.
    let g = fixture_in(store, policy(), keys("k2", &["k1", "k2"]), clock.clone()).await;
    assert!(g.valid(&old).await);
    let new = g
        .admin_token(admin_request("bob", TokenType::User, Some("new")))
        .await
        .unwrap();
    let key_ids = g
        .store
        .sql_strings("SELECT key_id FROM token_data ORDER BY key_id")
        .await;
    assert_eq!(key_ids, ["k1", "k2"]);
    assert_eq!(g.service.reseal_all().await.unwrap(), 1);
    assert_eq!(
        g.service.reseal_all().await.unwrap(),
        0,
        "nothing left to reseal"
    );
    let store = g.store;
    drop(g.service);

    // Once resealed, k1 can be dropped from the configuration.
    let h = fixture_in(store, policy(), keys("k2", &["k2"]), clock).await;
    assert!(h.valid(&old).await && h.valid(&new).await);
}

#[apply(backends)]
#[tokio::test]
async fn data_store_methods_round_trip_through_the_store(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let token = f
        .admin_token(admin_request("bot-x", TokenType::Service, None))
        .await
        .unwrap();
    let data = f.data.get(token.key()).await.unwrap().unwrap();
    assert_eq!(f.data.list().await.unwrap(), [token.key().clone()]);
    f.data
        .store(&TokenData {
            scopes: scopes(&["write:all"]),
            ..data
        })
        .await
        .unwrap();
    assert_eq!(f.data_of(&token).await.scopes, scopes(&["write:all"]));
    // A presented token with the right key and a wrong secret is refused.
    let wrong = Token::from_parts(
        token.key().clone(),
        Token::from_random([0; 16], [1; 16]).secret().clone(),
    );
    assert!(f.service.get_data(&wrong).await.unwrap().is_none());
    assert!(f.data.delete(token.key()).await.unwrap());
    assert!(!f.data.delete(token.key()).await.unwrap());
    // Corrupt ciphertext reads as no token at the check, and as an error to
    // the raw store (the audit's view).
    let other = f
        .admin_token(admin_request("bot-y", TokenType::Service, None))
        .await
        .unwrap();
    f.store.corrupt_token_data().await;
    assert!(f.service.get_data(&other).await.unwrap().is_none());
    assert!(f.data.get(other.key()).await.is_err());
}

#[apply(backends)]
#[tokio::test]
async fn metadata_store_lists_children_deepest_first_and_finds_orphans(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (session, _) = f.session("alice", &["read:all"]).await;
    let parent = f.data_of(&session).await;
    let notebook = f
        .service
        .get_notebook_token(&parent, None, None)
        .await
        .unwrap();
    let grandchild = f
        .service
        .get_internal_token(&f.data_of(&notebook).await, "tap", vec![], None, None)
        .await
        .unwrap();
    let children: Vec<TokenInfo> = f.metadata.get_children(session.key()).await.unwrap();
    let order: Vec<_> = children.iter().map(|c| c.token.clone()).collect();
    assert_eq!(order, [grandchild.key().clone(), notebook.key().clone()]);
    assert!(f.metadata.list_orphaned().await.unwrap().is_empty());
    f.metadata.delete(notebook.key(), None).await.unwrap();
    let orphans = f.metadata.list_orphaned().await.unwrap();
    assert_eq!(orphans.len(), 1);
    assert_eq!(&orphans[0].token, grandchild.key());
}

#[apply(backends)]
#[tokio::test]
async fn token_changes_feed_keys_revoked_or_edited_since_a_cursor_and_reset_on_gaps(
    backend: Backend,
) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let a = f
        .admin_token(admin_request("bob", TokenType::User, Some("a")))
        .await
        .unwrap();
    let b = f
        .admin_token(admin_request("bob", TokenType::User, Some("b")))
        .await
        .unwrap();
    let start = f.service.token_changes(None).await.unwrap();
    assert!(start.keys.is_empty() && !start.reset);

    f.service
        .delete_token(a.key(), &Actor::Cli, "bob", None)
        .await
        .unwrap();
    let rename = TokenChanges {
        token_name: Some("b2".into()),
        ..Default::default()
    };
    f.service
        .modify_token(b.key(), &Actor::Cli, "bob", rename, None)
        .await
        .unwrap();
    f.admin_token(admin_request("bob", TokenType::User, Some("c")))
        .await
        .unwrap();
    let feed = f.service.token_changes(Some(start.cursor)).await.unwrap();
    assert_eq!(
        feed.keys,
        [a.key().clone(), b.key().clone()],
        "creations are not changes"
    );
    assert!(!feed.reset);
    let quiet = f.service.token_changes(Some(feed.cursor)).await.unwrap();
    assert!(quiet.keys.is_empty() && quiet.cursor == feed.cursor);

    // History truncated past the cursor: the feed cannot tell, so reset.
    f.clock.advance(std::time::Duration::from_secs(31 * DAY));
    f.admin_token(admin_request("bob", TokenType::User, Some("d")))
        .await
        .unwrap();
    f.service.truncate_history().await.unwrap();
    assert!(
        f.service
            .token_changes(Some(start.cursor))
            .await
            .unwrap()
            .reset
    );
    // A cursor from another store's future: reset too.
    assert!(
        f.service
            .token_changes(Some(1_000_000))
            .await
            .unwrap()
            .reset
    );
}

#[apply(backends)]
#[tokio::test]
async fn no_child_is_made_from_a_parent_revoked_after_it_was_read(backend: Backend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let (session, _) = f.session("alice", &["read:all"]).await;
    // Read (as a check would) before the logout, used after it.
    let parent = f.data_of(&session).await;
    assert!(f.service.logout(&session, None).await.unwrap());
    let scopes: Vec<Scope> = vec!["read:all".parse().unwrap()];
    let refusals = [
        f.service.get_notebook_token(&parent, None, None).await,
        f.service
            .get_internal_token(&parent, "svc", scopes, None, None)
            .await,
        f.service.create_oidc_token(&parent, 3600, None).await,
    ];
    for refused in refusals {
        assert!(
            matches!(refused, Err(TokenError::ParentRevoked)),
            "{refused:?}"
        );
    }
    // Each refused child's data went with it.
    assert!(f.data.list().await.unwrap().is_empty());
}
