//! Image references, checked as docker's reference parser checks them.

use crate::error::ImageRefError;

/// Checks an image reference as docker's `reference.ParseAnyReference` does:
/// `[domain/]path[:tag][@digest]`, lower-case path components.
pub fn check_image_reference(image: &str) -> Result<(), ImageRefError> {
    if image.is_empty() {
        return Err(ImageRefError::Missing);
    }
    let (name_tag, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let (algorithm, hex) = d.split_once(':').ok_or(ImageRefError::Format)?;
        let algorithm_ok = algorithm.starts_with(|c: char| c.is_ascii_alphabetic())
            && algorithm
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_+.".contains(c));
        // Registered algorithms have fixed lengths; others need at least 32 hex digits.
        let length_ok = match algorithm {
            "sha256" => hex.len() == 64,
            "sha384" => hex.len() == 96,
            "sha512" => hex.len() == 128,
            _ => hex.len() >= 32,
        };
        if !algorithm_ok || !length_ok || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ImageRefError::Format);
        }
    }
    let last_slash = name_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => (&name_tag[..last_slash + i], Some(&name_tag[last_slash + i + 1..])),
        None => (name_tag, None),
    };
    if let Some(tag) = tag {
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && tag.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !tag_ok {
            return Err(ImageRefError::Format);
        }
    }
    let mut components: Vec<&str> = name.split('/').collect();
    let first = components[0];
    let has_domain = components.len() > 1 && (first.contains(['.', ':']) || first == "localhost");
    if has_domain {
        components.remove(0);
    }
    let mut lower_case_needed = false;
    for component in &components {
        let lower = component.to_ascii_lowercase();
        if !path_component_ok(&lower) {
            return Err(ImageRefError::Format);
        }
        lower_case_needed |= lower != *component;
    }
    if lower_case_needed {
        let shown = if has_domain || components.len() > 1 {
            name.to_string()
        } else {
            format!("library/{name}")
        };
        return Err(ImageRefError::Uppercase { shown });
    }
    Ok(())
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
pub(super) fn path_component_ok(c: &str) -> bool {
    let bytes = c.as_bytes();
    if bytes.is_empty() || !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut separator = String::new();
    for &b in bytes {
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            if !(separator.is_empty()
                || separator == "."
                || separator == "_"
                || separator == "__"
                || separator.bytes().all(|s| s == b'-'))
            {
                return false;
            }
            separator.clear();
        } else if b == b'.' || b == b'_' || b == b'-' {
            separator.push(b as char);
        } else {
            return false;
        }
    }
    true
}
