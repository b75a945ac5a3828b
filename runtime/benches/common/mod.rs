//! What the loopback load generators of the benchmarks share: a minimal HTTP/1.1 client
//! reading prepared requests' answers from keep-alive connections.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "benchmark")]

use tokio::io::{AsyncBufReadExt, AsyncReadExt};

/// Reads one HTTP/1.1 response from a keep-alive connection; returns its status.
pub async fn read_response(stream: &mut tokio::io::BufReader<tokio::net::TcpStream>) -> u16 {
    let mut status = 0;
    let mut length = 0;
    let mut line = String::new();
    loop {
        line.clear();
        stream.read_line(&mut line).await.unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(code) = line.strip_prefix("HTTP/1.1 ") {
            status = code[..3].parse().unwrap();
        } else if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.unwrap();
    status
}
