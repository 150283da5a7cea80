//! The cross-worker tier: answers in Envoy's shared data, one per bounded
//! slot, so that a token validated by one worker is answered by all. An
//! entry names its full key (slots are shared by hash), its expiry, and the
//! feed cursor at which it was asked for, so that each worker can judge it
//! against the revocations it has seen itself.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portcullis_core::check::upstream_header_name;
use serde::{Deserialize, Serialize};

use super::answers::{CacheKey, Cached};
use crate::decision::Refusal;

const SLOT_PREFIX: &str = "portcullis/answer/";

/// The shared-data key of the slot that `key` lives in.
pub fn slot_name(key: &CacheKey, slots: u32) -> String {
    let n = u32::from_be_bytes([key[0], key[1], key[2], key[3]]) % slots.max(1);
    format!("{SLOT_PREFIX}{n}")
}

#[derive(Serialize, Deserialize)]
enum Answer {
    Allow(Vec<(String, String)>),
    Refuse {
        status: u32,
        challenge: Option<String>,
        body: String,
    },
}

#[derive(Serialize, Deserialize)]
pub struct SharedEntry {
    key: String,
    pub expires_at_ms: u64,
    pub asked_at: i64,
    pub token_key: Option<String>,
    answer: Answer,
}

impl SharedEntry {
    pub fn new(
        key: &CacheKey,
        cached: &Cached,
        token_key: Option<String>,
        asked_at: i64,
        expires_at_ms: u64,
    ) -> Self {
        let answer = match cached {
            Cached::Allow(headers) => Answer::Allow(
                headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.clone()))
                    .collect(),
            ),
            Cached::Refuse(r) => Answer::Refuse {
                status: r.status,
                challenge: r.www_authenticate.clone(),
                body: String::from_utf8_lossy(&r.body).into_owned(),
            },
        };
        Self {
            key: URL_SAFE_NO_PAD.encode(key),
            expires_at_ms,
            asked_at,
            token_key,
            answer,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // Plain fields serialize without fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The entry in `bytes` if it is the one for `key` and has not expired.
    /// Whether it may still be trusted (revocations) is the caller's to judge.
    pub fn read(bytes: &[u8], key: &CacheKey, now_ms: u64) -> Option<Self> {
        let entry: SharedEntry = serde_json::from_slice(bytes).ok()?;
        (entry.key == URL_SAFE_NO_PAD.encode(key) && entry.expires_at_ms > now_ms).then_some(entry)
    }

    /// The answer, with header names mapped back to the known set: an
    /// entry naming any other header is not ours and is ignored.
    pub fn cached(&self) -> Option<Cached> {
        match &self.answer {
            Answer::Allow(headers) => headers
                .iter()
                .map(|(name, value)| Some((upstream_header_name(name)?, value.clone())))
                .collect::<Option<Vec<_>>>()
                .map(Cached::Allow),
            Answer::Refuse {
                status,
                challenge,
                body,
            } => Some(Cached::Refuse(Refusal {
                status: *status,
                www_authenticate: challenge.clone(),
                body: body.clone().into_bytes(),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::answers::cache_key;

    #[test]
    fn entries_round_trip_and_answer_only_for_their_own_key_until_they_expire() {
        let key = cache_key("Bearer a", "/p");
        let allow = Cached::Allow(vec![
            ("x-auth-request-user", "alice".into()),
            ("authorization", "Bearer d".into()),
        ]);
        let bytes = SharedEntry::new(&key, &allow, Some("k".into()), 7, 1000).encode();
        let entry = SharedEntry::read(&bytes, &key, 999).unwrap();
        assert_eq!(entry.cached(), Some(allow));
        assert_eq!((entry.asked_at, entry.token_key.as_deref()), (7, Some("k")));
        assert!(SharedEntry::read(&bytes, &key, 1000).is_none(), "expired");
        assert!(
            SharedEntry::read(&bytes, &cache_key("Bearer b", "/p"), 1).is_none(),
            "another key in the slot"
        );
        assert!(SharedEntry::read(b"garbage", &key, 1).is_none());
        assert!(
            !String::from_utf8_lossy(&bytes).contains("Bearer a"),
            "the credential is never stored"
        );
    }

    #[test]
    fn refusals_round_trip_and_foreign_headers_are_refused() {
        let key = cache_key("Bearer a", "/p");
        let refusal = Cached::Refuse(Refusal {
            status: 403,
            www_authenticate: Some("Bearer x".into()),
            body: b"{}".to_vec(),
        });
        let bytes = SharedEntry::new(&key, &refusal, None, 1, 1000).encode();
        assert_eq!(
            SharedEntry::read(&bytes, &key, 0).unwrap().cached(),
            Some(refusal)
        );
        let forged = Cached::Allow(vec![("x-auth-request-user", "a".into())]);
        let text =
            String::from_utf8(SharedEntry::new(&key, &forged, None, 1, 1000).encode()).unwrap();
        let planted = text.replace("x-auth-request-user", "x-evil");
        assert_eq!(
            SharedEntry::read(planted.as_bytes(), &key, 0)
                .unwrap()
                .cached(),
            None
        );
    }

    #[test]
    fn slots_are_bounded() {
        for i in 0..100 {
            let name = slot_name(&cache_key(&format!("t{i}"), "/p"), 16);
            let n: u32 = name.trim_start_matches(SLOT_PREFIX).parse().unwrap();
            assert!(n < 16);
        }
    }
}
