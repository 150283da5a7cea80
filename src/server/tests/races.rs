//! Writers and readers interleaved, many rounds, on both backends: the
//! change feed never skips a revocation, and nothing racing a revocation
//! brings the token (or a child of it) back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail by panicking

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use portcullis::app::App;
use portcullis::services::{Actor, AdminTokenRequest, ManualClock, UserInfo};
use portcullis_core::{Token, TokenKey, TokenType};

mod common;

use common::{backends, Backend};
use rstest_reuse::apply;

const START: u64 = 1_900_000_000;
const WRITERS: usize = 4;
const READERS: usize = 4;
const PER_WRITER: usize = 60;

/// A new user token `name` of `username` with `read:all`, made by the CLI.
async fn user_token(app: &App, username: &str, name: &str) -> Token {
    let request = AdminTokenRequest {
        user: UserInfo {
            username: username.into(),
            ..UserInfo::default()
        },
        token_type: TokenType::User,
        token_name: Some(name.into()),
        scopes: vec!["read:all".parse().unwrap()],
        expires: None,
    };
    app.tokens
        .create_token_from_admin_request(request, &Actor::Cli, None)
        .await
        .unwrap()
}

#[apply(backends)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_reader_of_the_feed_sees_every_revocation(backend: Backend) {
    let clock = Arc::new(ManualClock::at(START));
    let Some((app, _, _store)) = common::app(backend, clock).await else {
        return;
    };
    let app = Arc::new(app);
    let mut keys: Vec<Vec<TokenKey>> = vec![Vec::new(); WRITERS];
    for (w, batch) in keys.iter_mut().enumerate() {
        for i in 0..PER_WRITER {
            let token = user_token(&app, &format!("u{w}"), &format!("t{i}")).await;
            batch.push(token.key().clone());
        }
    }
    let start = app.tokens.token_changes(None).await.unwrap().cursor;
    let writing = Arc::new(AtomicBool::new(true));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (app, writing) = (app.clone(), writing.clone());
            tokio::spawn(async move {
                let (mut cursor, mut seen, mut polls) = (start, HashSet::new(), 0u32);
                loop {
                    let done = !writing.load(Ordering::SeqCst);
                    let page = app.tokens.token_changes(Some(cursor)).await.unwrap();
                    assert!(!page.reset, "the feed reset at {cursor}");
                    polls += 1;
                    seen.extend(page.keys);
                    let caught_up = page.cursor == cursor;
                    cursor = page.cursor;
                    // Writers finished before this poll, and it read nothing
                    // new: this reader has everything.
                    if done && caught_up {
                        return (seen, polls);
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let writers: Vec<_> = keys
        .iter()
        .cloned()
        .enumerate()
        .map(|(w, batch)| {
            let app = app.clone();
            tokio::spawn(async move {
                for key in batch {
                    let revoked = app
                        .tokens
                        .delete_token(&key, &Actor::Cli, &format!("u{w}"), None)
                        .await
                        .unwrap();
                    assert!(revoked);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    writing.store(false, Ordering::SeqCst);
    let revoked: HashSet<TokenKey> = keys.into_iter().flatten().collect();
    for reader in readers {
        let (seen, polls) = reader.await.unwrap();
        let missed: Vec<_> = revoked.difference(&seen).collect();
        assert!(
            missed.is_empty(),
            "a reader ({polls} polls) never heard of {} revocations: {missed:?}",
            missed.len()
        );
        assert!(polls >= 10, "readers polled while writers wrote ({polls})");
    }
}

const ROUNDS: usize = 150;

#[apply(backends)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_patch_racing_a_revocation_brings_the_token_back(backend: Backend) {
    let clock = Arc::new(ManualClock::at(START));
    let Some((app, _, _store)) = common::app(backend, clock).await else {
        return;
    };
    let app = Arc::new(app);
    let mut revived = 0;
    for round in 0..ROUNDS {
        let token = user_token(&app, "bob", &format!("r{round}")).await;
        let key = token.key().clone();
        let (a, b) = (app.clone(), app.clone());
        let (k1, k2) = (key.clone(), key.clone());
        let patch = tokio::spawn(async move {
            let changes = portcullis::model::TokenChanges {
                scopes: Some(vec![
                    "read:all".parse().unwrap(),
                    "write:all".parse().unwrap(),
                ]),
                ..Default::default()
            };
            // Losing the race (not found) is fine; reviving the token is not.
            let _ = a
                .tokens
                .modify_token(&k1, &Actor::Cli, "bob", changes, None)
                .await;
        });
        let revoke = tokio::spawn(async move {
            b.tokens
                .delete_token(&k2, &Actor::Cli, "bob", None)
                .await
                .unwrap()
        });
        patch.await.unwrap();
        assert!(
            revoke.await.unwrap(),
            "round {round}: the token was there to revoke"
        );
        if app.tokens.get_data(&token).await.unwrap().is_some() {
            revived += 1;
        }
    }
    assert_eq!(revived, 0, "{revived} of {ROUNDS} revoked tokens came back");
    // Nor is any of their data left behind for a later read to trust: the
    // edit's write was conditional on the token still being there.
    let audit = app.tokens.audit(false).await.unwrap();
    assert!(
        audit.problems.is_empty(),
        "{} left behind, e.g. {:?}",
        audit.problems.len(),
        audit.problems.first()
    );
}

#[apply(backends)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_child_made_while_its_parent_is_revoked_survives(backend: Backend) {
    let clock = Arc::new(ManualClock::at(START));
    let Some((app, _, _store)) = common::app(backend, clock).await else {
        return;
    };
    let app = Arc::new(app);
    let user = UserInfo {
        username: "carol".into(),
        ..UserInfo::default()
    };
    let scopes = vec!["read:all".parse().unwrap()];
    let (mut survivors, mut made) = (0, 0);
    for round in 0..ROUNDS {
        let session = app
            .tokens
            .create_session_token(&user, scopes.clone(), None)
            .await
            .unwrap();
        let parent = app.tokens.get_data(&session).await.unwrap().unwrap();
        // A notebook spawn and a delegation, racing a logout.
        let (a, b, c) = (app.clone(), app.clone(), app.clone());
        let (p1, p2) = (parent.clone(), parent);
        let notebook =
            tokio::spawn(async move { a.tokens.get_notebook_token(&p1, None, None).await });
        let internal = tokio::spawn(async move {
            let scopes = vec!["read:all".parse().unwrap()];
            b.tokens
                .get_internal_token(&p2, "svc", scopes, None, None)
                .await
        });
        let logout = tokio::spawn(async move { c.tokens.logout(&session, None).await });
        // Losing the race (an error) is fine; a live child is not.
        let children = [notebook.await.unwrap(), internal.await.unwrap()];
        assert!(logout.await.unwrap().unwrap(), "round {round}: logged out");
        for child in children.into_iter().flatten() {
            made += 1;
            if app.tokens.get_data(&child).await.unwrap().is_some() {
                survivors += 1;
            }
        }
    }
    assert_eq!(
        survivors, 0,
        "{survivors} of {made} children outlived the logout"
    );
    let audit = app.tokens.audit(false).await.unwrap();
    assert!(
        audit.problems.is_empty(),
        "{} left behind, e.g. {:?}",
        audit.problems.len(),
        audit.problems.first()
    );
}
