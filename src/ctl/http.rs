//! A small blocking HTTP/1.1 client for `zentrale ctl` (and the
//! integration tests' requests to the API and to WebDriver): one request per connection, bodies by
//! `Content-Length`, chunked or until close, and Server-Sent Events read
//! as they arrive. zentrale's API is plain HTTP on a trusted network
//! (loopback, or behind a TLS proxy), so no TLS here.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A response: status, headers (names in lower case) and body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header of that name (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One event of a Server-Sent Events stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    /// `message` when the stream names none.
    pub event: String,
    pub data: String,
}

/// Where requests go and with which bearer token.
#[derive(Debug, Clone)]
pub struct Client {
    /// `host:port` as sent in `Host`.
    pub authority: String,
    addr: SocketAddr,
    token: Option<String>,
    /// For connecting and each read (not for a whole event stream).
    pub timeout: Duration,
}

impl Client {
    /// A client of `authority` (`127.0.0.1:8080`, `localhost:8080`).
    pub fn new(authority: &str, token: Option<String>) -> io::Result<Client> {
        let addr = authority.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("`{authority}` names no address"),
            )
        })?;
        Ok(Client {
            authority: authority.to_owned(),
            addr,
            token,
            timeout: Duration::from_secs(10),
        })
    }

    #[cfg(test)]
    pub(crate) fn token_for_tests(&self) -> Option<&str> {
        self.token.as_deref()
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> io::Result<BufReader<TcpStream>> {
        let mut s = TcpStream::connect_timeout(&self.addr, self.timeout)?;
        s.set_read_timeout(Some(self.timeout))?;
        s.set_write_timeout(Some(self.timeout))?;
        let mut head = format!("{method} {path} HTTP/1.1\r\n");
        // A Host among `extra` replaces this one (the API's tests of its
        // Host check send names that are not the address).
        if !extra.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            head.push_str(&format!("Host: {}\r\n", self.authority));
        }
        head.push_str("Connection: close\r\nUser-Agent: zentrale-ctl\r\n");
        if let Some(t) = &self.token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        for (name, value) in extra {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let body = body.unwrap_or_default();
        if !body.is_empty()
            && !extra
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            head.push_str("Content-Type: application/json\r\n");
        }
        if !body.is_empty() || method != "GET" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        Ok(BufReader::new(s))
    }

    /// One request; the whole response.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> io::Result<Response> {
        let mut r = self.send(method, path, extra, body)?;
        let (status, headers) = read_head(&mut r)?;
        let mut body = Vec::new();
        let mut sink = |chunk: &[u8]| {
            body.extend_from_slice(chunk);
            true
        };
        read_body(&mut r, &headers, &mut sink)?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> io::Result<Response> {
        self.request("GET", path, &[], None)
    }

    /// `method path` with a JSON body.
    pub fn json(&self, method: &str, path: &str, body: &serde_json::Value) -> io::Result<Response> {
        let body = body.to_string();
        self.request(method, path, &[], Some(body.as_bytes()))
    }

    /// Follows an event stream: `on_event` gets each event as it arrives
    /// and returns `false` to stop. `Ok(Some(response))` when the server
    /// answered with something other than 200 (401, 503, ...), `Ok(None)`
    /// when the stream ended or `on_event` stopped it. Reads wait at most
    /// `idle` (the server sends a comment every 15 s).
    pub fn events(
        &self,
        path: &str,
        last_event_id: Option<&str>,
        idle: Duration,
        mut on_event: impl FnMut(SseEvent) -> bool,
    ) -> io::Result<Option<Response>> {
        let mut extra = vec![("Accept", "text/event-stream")];
        if let Some(id) = last_event_id {
            extra.push(("Last-Event-ID", id));
        }
        let mut r = self.send("GET", path, &extra, None)?;
        r.get_ref().set_read_timeout(Some(idle))?;
        let (status, headers) = read_head(&mut r)?;
        if status != 200 {
            let mut body = Vec::new();
            read_body(&mut r, &headers, &mut |c: &[u8]| {
                body.extend_from_slice(c);
                true
            })?;
            return Ok(Some(Response {
                status,
                headers,
                body,
            }));
        }
        let mut pending = String::new();
        let mut parser = |chunk: &[u8]| {
            pending.push_str(&String::from_utf8_lossy(chunk));
            while let Some(end) = pending.find("\n\n") {
                let block: String = pending.drain(..end + 2).collect();
                if let Some(event) = parse_event(&block)
                    && !on_event(event)
                {
                    return false;
                }
            }
            true
        };
        read_body(&mut r, &headers, &mut parser)?;
        Ok(None)
    }
}

/// One SSE block; `None` for comments and `retry:` only.
fn parse_event(block: &str) -> Option<SseEvent> {
    let (mut id, mut event, mut data) = (None, None, None::<String>);
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => id = Some(value.to_owned()),
            "event" => event = Some(value.to_owned()),
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
    Some(SseEvent {
        id,
        event: event.unwrap_or_else(|| "message".into()),
        data: data?,
    })
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

fn read_head(r: &mut impl BufRead) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad(format!("not an HTTP response: {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("the connection closed inside the response head"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    Ok((status, headers))
}

/// Hands the body to `sink` piece by piece until it ends or `sink`
/// returns `false`.
fn read_body(
    r: &mut impl BufRead,
    headers: &[(String, String)],
    sink: &mut dyn FnMut(&[u8]) -> bool,
) -> io::Result<()> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let size = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| bad(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                return Ok(());
            }
            let mut chunk = vec![0; size];
            r.read_exact(&mut chunk)?;
            let mut crlf = [0; 2];
            r.read_exact(&mut crlf)?;
            if !sink(&chunk) {
                return Ok(());
            }
        }
    }
    if let Some(n) = header("content-length").and_then(|v| v.parse::<u64>().ok()) {
        let mut body = Vec::new();
        r.take(n).read_to_end(&mut body)?;
        sink(&body);
        return Ok(());
    }
    let mut buf = [0; 8192];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 || !sink(&buf[..n]) {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_and_events_in_pieces() {
        let mut raw = String::from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        for piece in ["id: 1", "\nevent: call\ndata: {\"a\":1}\n", "\n: x\n"] {
            raw.push_str(&format!("{:x}\r\n{piece}\r\n", piece.len()));
        }
        raw.push_str("0\r\n\r\n");
        let mut r = BufReader::new(raw.as_bytes());
        let (status, headers) = read_head(&mut r).unwrap();
        assert_eq!(status, 200);
        let mut text = Vec::new();
        read_body(&mut r, &headers, &mut |c: &[u8]| {
            text.extend_from_slice(c);
            true
        })
        .unwrap();
        let text = String::from_utf8(text).unwrap();
        assert_eq!(text, "id: 1\nevent: call\ndata: {\"a\":1}\n\n: x\n");
        let first = text.split("\n\n").next().unwrap();
        assert_eq!(
            parse_event(first),
            Some(SseEvent {
                id: Some("1".into()),
                event: "call".into(),
                data: "{\"a\":1}".into()
            })
        );
        assert_eq!(parse_event(": keep-alive\n\n"), None);
        assert_eq!(parse_event("retry: 2000\n\n"), None);
    }
}
