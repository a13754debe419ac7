//! Read access to an Open Firmware device tree.
//!
//! `BootInfo` is built against this trait, so the same parsing runs against the
//! live firmware (through the client interface, `of::ClientInterface`) and
//! against an in-memory tree in host tests.

/// A node handle (an Open Firmware phandle).
pub type Node = u32;

pub trait DeviceTree {
    /// The node at an absolute path such as `/cpus`.
    fn find(&self, path: &str) -> Option<Node>;
    /// First child of `node`.
    fn child(&self, node: Node) -> Option<Node>;
    /// Next sibling of `node`.
    fn peer(&self, node: Node) -> Option<Node>;
    /// Copies up to `buf.len()` bytes of property `name` into `buf` and returns
    /// the property's full length, or `None` when the node has no such property.
    fn property(&self, node: Node, name: &str, buf: &mut [u8]) -> Option<usize>;
    /// The node's full path, written into `buf`; returns the length used.
    fn path(&self, node: Node, buf: &mut [u8]) -> Option<usize>;
}

/// Iterates over the children of a node.
pub fn children<T: DeviceTree + ?Sized>(tree: &T, node: Node) -> Children<'_, T> {
    Children { tree, next: tree.child(node) }
}

pub struct Children<'a, T: ?Sized> {
    tree: &'a T,
    next: Option<Node>,
}

impl<T: DeviceTree + ?Sized> Iterator for Children<'_, T> {
    type Item = Node;
    fn next(&mut self) -> Option<Node> {
        let node = self.next?;
        self.next = self.tree.peer(node);
        Some(node)
    }
}

/// Reads big-endian 32-bit cells.
pub fn cells(bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
    bytes.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}

/// Combines `count` (1 or 2) big-endian cells starting at `bytes` into one number.
pub fn read_cells(bytes: &[u8], count: usize) -> Option<u64> {
    if count == 0 || count > 2 || bytes.len() < count * 4 {
        return None;
    }
    Some(cells(&bytes[..count * 4]).fold(0u64, |acc, c| (acc << 32) | c as u64))
}

/// The strings of a string-list property such as `compatible`.
pub fn strings(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes.split(|&b| b == 0).filter(|s| !s.is_empty())
}

/// A NUL-terminated string property without its terminator (the first string
/// of a string list).
pub fn first_string(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

#[cfg(test)]
pub mod fake {
    //! An in-memory device tree for host tests.
    extern crate std;
    use super::{DeviceTree, Node};
    use std::string::String;
    use std::vec::Vec;

    pub struct FakeNode {
        pub path: String,
        pub parent: Option<usize>,
        pub props: Vec<(String, Vec<u8>)>,
    }

    #[derive(Default)]
    pub struct FakeTree {
        pub nodes: Vec<FakeNode>,
    }

    impl FakeTree {
        pub fn new() -> Self {
            let mut tree = FakeTree::default();
            tree.nodes.push(FakeNode { path: "/".into(), parent: None, props: Vec::new() });
            tree
        }

        /// Adds a node at `path` (its parent must exist) and returns its index.
        pub fn node(&mut self, path: &str) -> usize {
            let (parent_path, _) = path.rsplit_once('/').unwrap();
            let parent_path = if parent_path.is_empty() { "/" } else { parent_path };
            let parent = self.index(parent_path).expect("parent node exists");
            self.nodes.push(FakeNode { path: path.into(), parent: Some(parent), props: Vec::new() });
            self.nodes.len() - 1
        }

        pub fn prop(&mut self, path: &str, name: &str, value: &[u8]) -> &mut Self {
            let index = self.index(path).expect("node exists");
            self.nodes[index].props.push((name.into(), value.to_vec()));
            self
        }

        pub fn prop_cells(&mut self, path: &str, name: &str, cells: &[u32]) -> &mut Self {
            let bytes: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
            self.prop(path, name, &bytes)
        }

        pub fn prop_str(&mut self, path: &str, name: &str, value: &str) -> &mut Self {
            let mut bytes = value.as_bytes().to_vec();
            bytes.push(0);
            self.prop(path, name, &bytes)
        }

        fn index(&self, path: &str) -> Option<usize> {
            self.nodes.iter().position(|n| n.path == path)
        }
    }

    // Phandles are index + 1, so that 0 is never a node.
    impl DeviceTree for FakeTree {
        fn find(&self, path: &str) -> Option<Node> {
            self.index(path).map(|i| i as Node + 1)
        }
        fn child(&self, node: Node) -> Option<Node> {
            let parent = node as usize - 1;
            self.nodes.iter().position(|n| n.parent == Some(parent)).map(|i| i as Node + 1)
        }
        fn peer(&self, node: Node) -> Option<Node> {
            let me = node as usize - 1;
            let parent = self.nodes[me].parent?;
            (me + 1..self.nodes.len()).find(|&i| self.nodes[i].parent == Some(parent)).map(|i| i as Node + 1)
        }
        fn property(&self, node: Node, name: &str, buf: &mut [u8]) -> Option<usize> {
            let (_, value) = self.nodes[node as usize - 1].props.iter().find(|(n, _)| n == name)?;
            let copy = value.len().min(buf.len());
            buf[..copy].copy_from_slice(&value[..copy]);
            Some(value.len())
        }
        fn path(&self, node: Node, buf: &mut [u8]) -> Option<usize> {
            let path = self.nodes[node as usize - 1].path.as_bytes();
            let copy = path.len().min(buf.len());
            buf[..copy].copy_from_slice(&path[..copy]);
            Some(copy)
        }
    }
}
