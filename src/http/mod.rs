//! The HTTP/1.1 client: URLs, request encoding, response head parsing, body framing, the
//! keep-alive connection, cookies and redirects. It imports only the leaves `failure` (the error
//! taxonomy) and `tls` (the TLS adapter it drives on the same socket).
//!
//! Parsing is sans-IO (`head`, `body` work on byte slices and are tested split at every offset;
//! `read` holds a connection's read buffer and the response in progress); `conn` drives them over
//! a monoio `TcpStream`.

pub mod body;
pub mod conn;
pub mod cookie;
pub mod head;
pub mod read;
pub mod redirect;
pub mod request;
pub mod url;

pub use body::{Body, Progress, Sink};
pub use conn::{Conn, Exchange, Kept};
pub use head::{parse_head, parse_head_cached, Framing, Head};
pub use request::encode_request;
pub use url::Url;
