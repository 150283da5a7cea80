//! `portcullis export` / `import` between the two backends, both ways:
//! every token, link, history entry and client arrives; a bad or
//! colliding import writes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail by panicking

use std::sync::Arc;

use portcullis::app::App;
use portcullis::model::HistoryFilter;
use portcullis::services::oidc::NewClient;
use portcullis::services::transfer::TransferError;
use portcullis::services::{Actor, ManualClock, UserInfo};
use portcullis::storage::StorageError;
use portcullis_core::Token;
use rstest::rstest;

mod common;

use common::{Backend, TestStore};

const START: u64 = 1_900_000_000;

struct Source {
    app: App,
    _store: TestStore,
    session: Token,
    notebook: Token,
    revoked: Token,
}

async fn source(backend: Backend) -> Option<Source> {
    let clock = Arc::new(ManualClock::at(START));
    let (app, _, store) = common::app(backend, clock).await?;
    let user = UserInfo {
        username: "alice".into(),
        email: Some("alice@example.org".into()),
        ..UserInfo::default()
    };
    let scopes = vec![
        "read:all".parse().unwrap(),
        "exec:notebook".parse().unwrap(),
    ];
    let session = app
        .tokens
        .create_session_token(&user, scopes.clone(), None)
        .await
        .unwrap();
    let parent = app.tokens.get_data(&session).await.unwrap().unwrap();
    let notebook = app
        .tokens
        .get_notebook_token(&parent, None, None)
        .await
        .unwrap();
    let revoked = app
        .tokens
        .create_session_token(&user, scopes, None)
        .await
        .unwrap();
    app.tokens
        .delete_token(revoked.key(), &Actor::Cli, "alice", None)
        .await
        .unwrap();
    let client = NewClient {
        client_id: "wiki".into(),
        redirect_uris: vec!["https://wiki.example.org/cb".into()],
        public: false,
        name: None,
    };
    app.oidc
        .as_ref()
        .unwrap()
        .clients()
        .register(&Actor::Cli, client)
        .await
        .unwrap();
    Some(Source {
        app,
        _store: store,
        session,
        notebook,
        revoked,
    })
}

async fn everything(app: &App) -> (Vec<String>, usize, Vec<String>) {
    let mut tokens: Vec<String> = app
        .tokens
        .list_tokens(&Actor::Cli, None)
        .await
        .unwrap()
        .into_iter()
        .map(|t| format!("{} {:?} {:?}", t.token, t.token_type, t.parent))
        .collect();
    tokens.sort();
    let history = app
        .tokens
        .get_change_history(&Actor::Cli, HistoryFilter::default(), None, None)
        .await
        .unwrap()
        .entries
        .len();
    let clients = app
        .oidc
        .as_ref()
        .unwrap()
        .clients()
        .list(&Actor::Cli)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    (tokens, history, clients)
}

#[rstest]
#[case::embedded_to_distributed(Backend::Embedded, Backend::Distributed)]
#[case::distributed_to_embedded(Backend::Distributed, Backend::Embedded)]
#[tokio::test]
async fn export_then_import_moves_every_token_link_entry_and_client(
    #[case] from: Backend,
    #[case] to: Backend,
) {
    let Some(source) = source(from).await else {
        return;
    };
    let Some((target, _, _target_store)) = common::app(to, Arc::new(ManualClock::at(START))).await
    else {
        return;
    };
    let (document, moved) = source.app.transfer.export().await.unwrap();
    assert_eq!((moved.tokens, moved.oidc_clients), (2, 1));
    assert!(
        !String::from_utf8_lossy(&document).contains(&source.session.secret().expose()),
        "token data stays sealed in the file"
    );
    assert_eq!(target.transfer.import(&document).await.unwrap(), moved);

    assert_eq!(everything(&target).await, everything(&source.app).await);
    for live in [&source.session, &source.notebook] {
        let data = target
            .tokens
            .get_data(live)
            .await
            .unwrap()
            .expect("valid after the move");
        assert_eq!(data.username, "alice");
    }
    assert!(target
        .tokens
        .get_data(&source.revoked)
        .await
        .unwrap()
        .is_none());
    // Links survive: revoking the session takes its notebook with it.
    target
        .tokens
        .delete_token(source.session.key(), &Actor::Cli, "alice", None)
        .await
        .unwrap();
    assert!(target
        .tokens
        .get_data(&source.notebook)
        .await
        .unwrap()
        .is_none());
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::distributed(Backend::Distributed)]
#[tokio::test]
async fn a_bad_or_colliding_import_writes_nothing(#[case] backend: Backend) {
    let Some(source) = source(backend).await else {
        return;
    };
    let (document, _) = source.app.transfer.export().await.unwrap();

    // Into a store that already has tokens: refused, and nothing added.
    let before = everything(&source.app).await;
    let refused = source.app.transfer.import(&document).await.unwrap_err();
    assert!(
        matches!(
            refused,
            TransferError::Storage(StorageError::ImportConflict(_))
        ),
        "{refused}"
    );
    assert_eq!(everything(&source.app).await, before);

    let Some(store) = TestStore::new(backend).await else {
        return;
    };
    let empty = || async {
        let app = App::with_clock(&store.config(""), Arc::new(ManualClock::at(START)))
            .await
            .unwrap();
        let seen = everything(&app).await;
        (app, seen)
    };
    let (target, nothing) = empty().await;
    for (bad, why) in [
        (b"{".to_vec(), "not JSON"),
        (br#"{"format": "other", "version": 1}"#.to_vec(), "format"),
        (
            br#"{"format": "portcullis-export", "version": 9}"#.to_vec(),
            "version",
        ),
    ] {
        let e = target.transfer.import(&bad).await.unwrap_err();
        assert!(
            matches!(e, TransferError::Format(_) | TransferError::Version(9)),
            "{why}: {e}"
        );
    }
    // Sealed under other keys: refused before anything is written.
    let text = String::from_utf8(document).unwrap();
    let other_keys = {
        let dump: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut dump = dump;
        let record = &mut dump["store"]["data"][0]["ciphertext"];
        *record = serde_json::Value::String("AAAA".into());
        dump.to_string()
    };
    let e = target
        .transfer
        .import(other_keys.as_bytes())
        .await
        .unwrap_err();
    assert!(
        matches!(e, TransferError::Storage(StorageError::Sealed { .. })),
        "{e}"
    );
    assert_eq!(everything(&target).await, nothing);
    // A client that collides halfway (two of the same id) rolls all back.
    let doubled = {
        let mut dump: serde_json::Value = serde_json::from_str(&text).unwrap();
        let client = dump["store"]["oidc_clients"][0].clone();
        dump["store"]["oidc_clients"]
            .as_array_mut()
            .unwrap()
            .push(client);
        dump.to_string()
    };
    assert!(target.transfer.import(doubled.as_bytes()).await.is_err());
    assert_eq!(everything(&target).await, nothing);
    assert!(target
        .tokens
        .get_data(&source.session)
        .await
        .unwrap()
        .is_none());
}
