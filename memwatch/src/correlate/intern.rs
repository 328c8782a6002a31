//! Strings that many requests share (methods, Host headers), held once: a request row carries
//! a shared [`Arc<str>`] rather than its own copy, so that handing rows to the writer's thread
//! frees nothing there but the rows themselves.

use std::sync::Arc;

/// Interned strings. Bounded: once it holds [`Interner::CAPACITY`] strings (hostile traffic can
/// send endless distinct ones), further strings are given their own allocation each time.
#[derive(Debug, Default)]
pub struct Interner(rustc_hash::FxHashSet<Arc<str>>);

impl Interner {
    pub const CAPACITY: usize = 4096;

    /// `s`, shared with every earlier request that had it.
    pub fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(held) = self.0.get(s) {
            return Arc::clone(held);
        }
        let new: Arc<str> = Arc::from(s);
        if self.0.len() < Self::CAPACITY {
            self.0.insert(Arc::clone(&new));
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_share_one_allocation_up_to_the_bound() {
        let mut names = Interner::default();
        let a = names.get("GET");
        let b = names.get("GET");
        assert!(Arc::ptr_eq(&a, &b));
        for i in 0..Interner::CAPACITY {
            names.get(&format!("h{i}"));
        }
        assert_eq!(names.0.len(), Interner::CAPACITY);
        let past = names.get("beyond");
        assert_eq!(&*past, "beyond");
        assert!(!Arc::ptr_eq(&past, &names.get("beyond")));
        assert!(Arc::ptr_eq(&a, &names.get("GET")));
    }
}
