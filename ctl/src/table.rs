//! Docker-style tables: left-aligned columns separated by at least three spaces.

/// Renders rows under a header. Every column but the last is padded to its widest cell + 3.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(cols) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cols {
                s.push_str(cell);
            } else {
                s.push_str(cell);
                let pad = widths[i] + 3 - cell.chars().count();
                s.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// `ready` → `Ready`, as docker prints states.
pub fn title(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned() {
        let out = render(
            &["ID", "NAME"],
            &[vec!["abc".into(), "web".into()], vec!["a".into(), "db".into()]],
        );
        assert_eq!(out, "ID    NAME\nabc   web\na     db\n");
        assert_eq!(title("ready"), "Ready");
    }
}
