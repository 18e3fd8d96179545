//! One watched resource's objects, keyed `namespace/name` (or `name`), with the
//! watcher's initial-list protocol.

use std::collections::BTreeMap;

/// One watched resource's objects, with the watcher's initial-list protocol: `init`,
/// `init_apply`…, `init_done` replaces the contents; `apply`/`delete` edit them.
#[derive(Debug, Clone)]
pub struct Store<T> {
    items: BTreeMap<String, T>,
    init: Option<BTreeMap<String, T>>,
    synced: bool,
}

impl<T> Default for Store<T> {
    fn default() -> Self {
        Store {
            items: BTreeMap::new(),
            init: None,
            synced: false,
        }
    }
}

impl<T> Store<T> {
    pub fn init(&mut self) {
        self.init = Some(BTreeMap::new());
    }
    pub fn init_apply(&mut self, key: String, v: T) {
        self.init.get_or_insert_with(BTreeMap::new).insert(key, v);
    }
    pub fn init_done(&mut self) {
        if let Some(i) = self.init.take() {
            self.items = i;
        }
        self.synced = true;
    }
    pub fn apply(&mut self, key: String, v: T) {
        self.items.insert(key, v);
    }
    pub fn delete(&mut self, key: &str) {
        self.items.remove(key);
    }
    pub fn synced(&self) -> bool {
        self.synced
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    pub fn values(&self) -> std::collections::btree_map::Values<'_, String, T> {
        self.items.values()
    }
    pub fn get(&self, key: &str) -> Option<&T> {
        self.items.get(key)
    }
    /// The objects by key, in key order.
    pub fn iter(&self) -> std::collections::btree_map::Iter<'_, String, T> {
        self.items.iter()
    }
}
