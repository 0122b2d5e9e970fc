//! Reading a file to ingest: text or Markdown, UTF-8, not empty, not oversized. Every refusal has
//! a stable code, so that `context ingest` can report it and store nothing of the file.

use std::io::Read;
use std::path::Path;

/// Largest file ingested, in bytes.
pub const MAX_DOCUMENT_BYTES: u64 = 4 * 1024 * 1024;
/// The file types read: plain text and Markdown.
const EXTENSIONS: [&str; 4] = ["txt", "text", "md", "markdown"];

/// A document's text, and the name it is stored under (its file name). Its `Debug` shows the
/// name and the size, never the text.
#[derive(Clone, PartialEq, Eq)]
pub struct Document {
    pub name: String,
    pub text: String,
}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document")
            .field("name", &self.name)
            .field("text_bytes", &self.text.len())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("{path}: only text and Markdown files (.txt, .text, .md, .markdown) are ingested")]
    UnsupportedType { path: String },
    #[error("{path}: the file could not be read")]
    Unreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: the file is over {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge { path: String },
    #[error("{path}: the file is not UTF-8 text (first bad byte at offset {offset})")]
    NotUtf8 { path: String, offset: usize },
    #[error("{path}: the file holds no text")]
    Empty { path: String },
}

impl DocumentError {
    /// The stable code the CLI reports.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedType { .. } => "unsupported_type",
            Self::Unreadable { .. } => "unreadable",
            Self::TooLarge { .. } => "too_large",
            Self::NotUtf8 { .. } => "not_utf8",
            Self::Empty { .. } => "empty",
        }
    }
}

/// The SHA-256 of a document's text (its file's bytes), lowercase hex: how an unchanged file is
/// recognised and not ingested again.
pub fn content_hash(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// Whether `path` names a file type that is read (by its extension).
pub fn is_supported(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Reads the document at `path`.
pub fn read(path: &Path) -> Result<Document, DocumentError> {
    let shown = path.display().to_string();
    if !is_supported(path) {
        return Err(DocumentError::UnsupportedType { path: shown });
    }
    let unreadable = |source| DocumentError::Unreadable {
        path: shown.clone(),
        source,
    };
    // Read at most one byte past the limit, so an oversized file is refused without reading it
    // all, whatever its metadata says.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_DOCUMENT_BYTES + 1).read_to_end(&mut bytes))
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(DocumentError::TooLarge { path: shown });
    }
    let text = String::from_utf8(bytes).map_err(|e| DocumentError::NotUtf8 {
        path: shown.clone(),
        offset: e.utf8_error().valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text).to_owned();
    if text.trim().is_empty() {
        return Err(DocumentError::Empty { path: shown });
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Document { name, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("promptseal-doc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn text_and_markdown_are_read_without_a_byte_order_mark() {
        let doc = read(&file("Guide.MD", "\u{feff}# Title\n\nBody.\n".as_bytes())).unwrap();
        assert_eq!(doc.name, "Guide.MD");
        assert_eq!(doc.text, "# Title\n\nBody.\n");
        assert_eq!(
            format!("{doc:?}"),
            "Document { name: \"Guide.MD\", text_bytes: 15 }"
        );
        assert!(read(&file("notes.txt", b"plain")).is_ok());
    }

    #[test]
    fn bad_files_are_refused_with_stable_codes() {
        let cases = [
            (file("data.pdf", b"%PDF-1.7"), "unsupported_type"),
            (file("noext", b"text"), "unsupported_type"),
            (file("latin1.txt", b"caf\xe9 au lait"), "not_utf8"),
            (file("blank.md", b" \n\t\n"), "empty"),
            (file("zero.txt", b""), "empty"),
            (
                file("big.txt", &vec![b'a'; MAX_DOCUMENT_BYTES as usize + 1]),
                "too_large",
            ),
            (std::env::temp_dir().join("no-such-file.md"), "unreadable"),
        ];
        for (path, code) in cases {
            let err = read(&path).unwrap_err();
            assert_eq!(err.code(), code, "{}: {err}", path.display());
        }
        let err = read(&file("latin1.txt", b"caf\xe9 au lait")).unwrap_err();
        assert!(err.to_string().contains("offset 3"), "{err}");
        assert!(read(&file("exact.txt", &vec![b'a'; MAX_DOCUMENT_BYTES as usize])).is_ok());
    }
}
