//! Tahoe-LAFS's Merkle hash trees: complete binary trees over a power-of-two leaf row, stored
//! flat in breadth-first order (node 0 the root; node `i` has children `2i+1` and `2i+2`).

use crate::hash::{tagged_hash, tagged_pair_hash, tags, Hash};

/// The hash of padding leaf `index` (its position in the padded leaf row).
fn empty_leaf_hash(index: usize) -> Hash {
    tagged_hash(tags::MERKLE_EMPTY_LEAF, index.to_string().as_bytes())
}

/// The hash of an inner node from its two children.
pub fn pair_hash(left: &Hash, right: &Hash) -> Hash {
    tagged_pair_hash(tags::MERKLE_INNER, left, right)
}

/// How many nodes a tree over `num_leaves` leaves has, padding included.
pub fn node_count(num_leaves: usize) -> usize {
    2 * num_leaves.max(1).next_power_of_two() - 1
}

/// A complete hash tree, every node present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashTree {
    nodes: Vec<Hash>,
}

impl HashTree {
    /// Builds the tree over `leaves`, padding the leaf row up to a power of two.
    pub fn new(leaves: &[Hash]) -> Self {
        let width = leaves.len().max(1).next_power_of_two();
        let first_leaf = width - 1;
        let mut nodes = vec![[0u8; 32]; 2 * width - 1];
        nodes[first_leaf..first_leaf + leaves.len()].copy_from_slice(leaves);
        for i in leaves.len()..width {
            nodes[first_leaf + i] = empty_leaf_hash(i);
        }
        for i in (0..first_leaf).rev() {
            nodes[i] = pair_hash(&nodes[2 * i + 1], &nodes[2 * i + 2]);
        }
        HashTree { nodes }
    }

    /// Takes a tree as stored (all nodes, breadth first) and checks that it has a tree's shape
    /// and that every inner node is the hash of its children. Its root is then as good as
    /// whatever vouches for it.
    pub fn from_nodes(nodes: Vec<Hash>) -> Result<Self, TreeError> {
        let count = nodes.len();
        if count == 0 || !(count + 1).is_power_of_two() {
            return Err(TreeError::BadShape { nodes: count });
        }
        let first_leaf = count / 2;
        if let Some(bad) = (0..first_leaf)
            .rev()
            .find(|&i| nodes[i] != pair_hash(&nodes[2 * i + 1], &nodes[2 * i + 2]))
        {
            return Err(TreeError::InnerNodeMismatch { node: bad });
        }
        Ok(HashTree { nodes })
    }

    /// [`HashTree::from_nodes`], and the root must be `expected_root`: on success every leaf
    /// can be trusted as far as `expected_root` can.
    pub fn verified_from_nodes(nodes: Vec<Hash>, expected_root: &Hash) -> Result<Self, TreeError> {
        let tree = Self::from_nodes(nodes)?;
        if &tree.root() != expected_root {
            return Err(TreeError::RootMismatch);
        }
        Ok(tree)
    }

    /// The root hash.
    pub fn root(&self) -> Hash {
        self.nodes[0]
    }

    /// All nodes, breadth first, as stored in a share.
    pub fn nodes(&self) -> &[Hash] {
        &self.nodes
    }

    /// Leaf `i` (an unpadded leaf when `i` is below the leaf count the tree was built from).
    pub fn leaf(&self, i: usize) -> Option<&Hash> {
        self.nodes.get(self.nodes.len() / 2 + i)
    }

    /// The node indexes a holder of leaf `leaf` needs to prove it up to the root: the leaf
    /// itself and the sibling of every node on its path, ascending; the root is left out.
    pub fn chain_indexes(&self, leaf: usize) -> Vec<usize> {
        chain_indexes(self.nodes.len(), leaf)
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> Option<&Hash> {
        self.nodes.get(i)
    }
}

/// See [`HashTree::chain_indexes`]; `node_count` is the size of the whole tree.
pub fn chain_indexes(node_count: usize, leaf: usize) -> Vec<usize> {
    let mut node = node_count / 2 + leaf;
    let mut out = vec![node];
    while node > 0 {
        out.push(sibling(node));
        node = (node - 1) / 2;
    }
    out.sort_unstable();
    out
}

fn sibling(node: usize) -> usize {
    if node % 2 == 1 {
        node + 1
    } else {
        node - 1
    }
}

/// Proves `leaf_hash` as leaf `leaf` of a tree of `node_count` nodes whose root is `root`,
/// from `chain`: the nodes [`chain_indexes`] names, each with its index. The chain must hold
/// exactly those nodes, and its copy of the leaf must equal `leaf_hash`.
pub fn verify_chain(
    node_count: usize,
    leaf: usize,
    leaf_hash: &Hash,
    chain: &[(usize, Hash)],
    root: &Hash,
) -> Result<(), TreeError> {
    let needed = chain_indexes(node_count, leaf);
    let mut given: Vec<usize> = chain.iter().map(|(i, _)| *i).collect();
    given.sort_unstable();
    if given != needed {
        return Err(TreeError::WrongChainNodes { needed, given });
    }
    let lookup = |i: usize| chain.iter().find(|(j, _)| *j == i).map(|(_, h)| h);
    let mut node = node_count / 2 + leaf;
    if lookup(node) != Some(leaf_hash) {
        return Err(TreeError::LeafMismatch);
    }
    let mut hash = *leaf_hash;
    while node > 0 {
        let other = lookup(sibling(node)).ok_or(TreeError::LeafMismatch)?;
        hash = if node % 2 == 1 {
            pair_hash(&hash, other)
        } else {
            pair_hash(other, &hash)
        };
        node = (node - 1) / 2;
    }
    if &hash != root {
        return Err(TreeError::RootMismatch);
    }
    Ok(())
}

/// Why a hash tree or hash chain did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("a hash tree cannot have {nodes} nodes (must be 2^n - 1)")]
    BadShape { nodes: usize },
    #[error("node {node} is not the hash of its children")]
    InnerNodeMismatch { node: usize },
    #[error("the tree's root does not match the expected root")]
    RootMismatch,
    #[error("the hash chain holds nodes {given:?} but proving the leaf needs exactly {needed:?}")]
    WrongChainNodes {
        needed: Vec<usize>,
        given: Vec<usize>,
    },
    #[error("the hash chain's copy of the leaf differs from the leaf")]
    LeafMismatch,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| tagged_hash(b"test", &[i as u8])).collect()
    }

    #[test]
    fn one_leaf_tree_is_its_leaf() {
        let l = leaves(1);
        let t = HashTree::new(&l);
        assert_eq!(t.nodes().len(), 1);
        assert_eq!(t.root(), l[0]);
    }

    #[test]
    fn three_leaves_pad_with_the_indexed_empty_leaf() {
        let l = leaves(3);
        let t = HashTree::new(&l);
        let pad = empty_leaf_hash(3);
        let expected = pair_hash(&pair_hash(&l[0], &l[1]), &pair_hash(&l[2], &pad));
        assert_eq!(t.root(), expected);
        assert_eq!(node_count(3), 7);
    }

    #[test]
    fn every_chain_verifies_and_a_wrong_one_does_not() {
        for n in [1, 2, 3, 5, 10, 16, 17] {
            let l = leaves(n);
            let t = HashTree::new(&l);
            let count = t.nodes().len();
            for (i, leaf) in l.iter().enumerate() {
                let chain: Vec<(usize, Hash)> = t
                    .chain_indexes(i)
                    .into_iter()
                    .map(|j| (j, t.nodes()[j]))
                    .collect();
                verify_chain(count, i, leaf, &chain, &t.root()).unwrap();
                let mut bad = chain.clone();
                bad.last_mut().unwrap().1[0] ^= 1;
                assert!(verify_chain(count, i, leaf, &bad, &t.root()).is_err());
                assert!(verify_chain(count, i, &[7; 32], &chain, &t.root()).is_err());
            }
        }
    }

    #[test]
    fn stored_tree_is_checked_node_by_node() {
        let t = HashTree::new(&leaves(5));
        let root = t.root();
        assert!(HashTree::verified_from_nodes(t.nodes().to_vec(), &root).is_ok());
        for i in 0..t.nodes().len() {
            let mut nodes = t.nodes().to_vec();
            nodes[i][31] ^= 0x80;
            assert!(
                HashTree::verified_from_nodes(nodes, &root).is_err(),
                "node {i}"
            );
        }
        assert_eq!(
            HashTree::verified_from_nodes(vec![[0; 32]; 4], &root),
            Err(TreeError::BadShape { nodes: 4 })
        );
    }
}
