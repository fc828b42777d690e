//! Graph validation before anything runs: every dependency names another
//! spec of the graph (by its `node` label or its index), and there is no cycle.

/// A spec as the graph validator sees it.
pub struct Node<'a> {
    /// Its `node` label, if any.
    pub name: Option<&'a str>,
    /// Its dependency references.
    pub depends_on: &'a [String],
}

/// For each spec, the indices of the specs it depends on; or why the graph
/// is invalid, naming the spec and reference at fault.
pub fn resolve(nodes: &[Node<'_>]) -> Result<Vec<Vec<usize>>, String> {
    // The first spec with each name, as a linear search would find it.
    let mut by_name: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        if let Some(name) = n.name {
            by_name.entry(name).or_insert(i);
        }
    }
    let mut edges = Vec::with_capacity(nodes.len());
    for (i, n) in nodes.iter().enumerate() {
        let mut deps = Vec::new();
        for r in n.depends_on {
            let target = by_name
                .get(r.as_str())
                .copied()
                .or_else(|| r.parse::<usize>().ok().filter(|&k| k < nodes.len()))
                .ok_or_else(|| {
                    format!(
                        "spec {} depends on `{r}`, which is neither the `node` label nor the index of a spec in this graph",
                        label(nodes, i)
                    )
                })?;
            if target == i {
                return Err(format!("spec {} depends on itself", label(nodes, i)));
            }
            if !deps.contains(&target) {
                deps.push(target);
            }
        }
        edges.push(deps);
    }
    if let Some(cycle) = find_cycle(&edges) {
        let names: Vec<String> = cycle.iter().map(|&i| label(nodes, i)).collect();
        return Err(format!("the graph has a cycle: {}", names.join(" → ")));
    }
    Ok(edges)
}

fn label(nodes: &[Node<'_>], i: usize) -> String {
    match nodes[i].name {
        Some(n) => format!("`{n}`"),
        None => format!("#{i}"),
    }
}

/// A cycle as a list of indices (first repeated at the end), if any.
fn find_cycle(edges: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        i: usize,
        edges: &[Vec<usize>],
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        marks[i] = Mark::Open;
        stack.push(i);
        for &d in &edges[i] {
            match marks[d] {
                Mark::Open => {
                    let from = stack.iter().position(|&s| s == d).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(d);
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(d, edges, marks, stack) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks[i] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; edges.len()];
    let mut stack = Vec::new();
    (0..edges.len()).find_map(|i| {
        if marks[i] == Mark::New {
            visit(i, edges, &mut marks, &mut stack)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_and_indices_resolve() {
        let (a, b, c) = (deps(&[]), deps(&["db"]), deps(&["0", "db"]));
        let nodes = [
            Node {
                name: Some("db"),
                depends_on: &a,
            },
            Node {
                name: Some("web"),
                depends_on: &b,
            },
            Node {
                name: None,
                depends_on: &c,
            },
        ];
        assert_eq!(resolve(&nodes).unwrap(), vec![vec![], vec![0], vec![0]]);
    }

    #[test]
    fn unknown_self_and_cycles_are_explained() {
        let x = deps(&["ghost"]);
        let err = resolve(&[Node {
            name: Some("a"),
            depends_on: &x,
        }])
        .unwrap_err();
        assert!(err.contains("`ghost`"), "{err}");
        let s = deps(&["a"]);
        assert!(
            resolve(&[Node {
                name: Some("a"),
                depends_on: &s
            }])
            .unwrap_err()
            .contains("itself")
        );
        let (a, b, c) = (deps(&["c"]), deps(&["a"]), deps(&["b"]));
        let nodes = [
            Node {
                name: Some("a"),
                depends_on: &a,
            },
            Node {
                name: Some("b"),
                depends_on: &b,
            },
            Node {
                name: Some("c"),
                depends_on: &c,
            },
        ];
        let err = resolve(&nodes).unwrap_err();
        assert!(
            err.contains("cycle") && err.contains("`a`") && err.contains("`c`"),
            "{err}"
        );
    }
}
