//! A proxy in memory, for the native tests of everything that runs over
//! [`Host`]: the request flow and the feed poller.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use crate::flow::{Host, Level};
use crate::stats::Event;

/// Shared-data values with their compare-and-swap tokens.
pub type SharedData = HashMap<String, (Vec<u8>, u32)>;

/// A proxy in memory: request headers, route properties, shared data
/// (with compare-and-swap, shared by the "workers" that clone it), a
/// clock, and counters.
#[derive(Default)]
pub struct FakeHost {
    pub headers: RefCell<Vec<(String, Vec<u8>)>>,
    pub properties: HashMap<String, Vec<u8>>,
    pub shared: Rc<RefCell<SharedData>>,
    pub now: Cell<u64>,
    pub counts: RefCell<HashMap<&'static str, u64>>,
    pub logs: RefCell<Vec<(Level, String)>>,
}

impl FakeHost {
    pub fn request(&self, headers: &[(&str, &str)]) -> &Self {
        *self.headers.borrow_mut() = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect();
        self
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.request_header(name)
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    pub fn counted(&self, event: Event) -> u64 {
        self.counts.borrow().get(event.name()).copied().unwrap_or(0)
    }
}

impl Host for FakeHost {
    fn request_headers(&self) -> Vec<(String, Vec<u8>)> {
        self.headers.borrow().clone()
    }

    fn request_header(&self, name: &str) -> Option<Vec<u8>> {
        self.headers
            .borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    fn set_request_header(&self, name: &str, value: Option<&[u8]>) {
        let mut headers = self.headers.borrow_mut();
        headers.retain(|(n, _)| n != name);
        if let Some(value) = value {
            headers.push((name.to_owned(), value.to_vec()));
        }
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.properties.get(&path.join(".")).cloned()
    }

    fn shared(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        match self.shared.borrow().get(key) {
            Some((value, cas)) => (Some(value.clone()), Some(*cas)),
            None => (None, None),
        }
    }

    fn set_shared(&self, key: &str, value: &[u8], cas: Option<u32>) {
        let mut shared = self.shared.borrow_mut();
        let current = shared.get(key).map(|(_, c)| *c);
        if cas.is_none() || cas == current {
            shared.insert(key.to_owned(), (value.to_vec(), current.unwrap_or(0) + 1));
        }
    }

    fn now_ms(&self) -> u64 {
        self.now.get()
    }

    fn count_by(&self, event: Event, n: u64) {
        *self.counts.borrow_mut().entry(event.name()).or_default() += n;
    }

    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_owned()));
    }
}
