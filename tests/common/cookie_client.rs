//! A cookie-keeping HTTP client, as a browser keeps the console's cookies, for the tests and
//! the bench's console scenario.
//!
//! reqwest keeps cookies only with its `cookies` feature, and Cargo gives every test and
//! example of this package the same features: with that feature on for the tests, the
//! bench's floor server (an example) got reqwest's cookie layer, which turns every
//! code2Session call's address into text and parses it again, cookie store or not. The
//! product, built without it, pays nothing of the kind, so the floor counted work that is
//! not unavoidable: 11k instructions a login, 9% of its HTTP workers' (callgrind,
//! `bench --callgrind-floor 10`: 132.6k with the layer, 121.2k without). This keeps cookies
//! with the store reqwest's feature uses (`cookie_store`), around a plain client.

use std::sync::Mutex;

use reqwest::header::{HeaderValue, COOKIE, SET_COOKIE};

/// A client that sends back the cookies its responses set, by domain, path and expiry.
pub struct CookieClient {
    client: reqwest::Client,
    jar: Mutex<cookie_store::CookieStore>,
}

impl CookieClient {
    /// Keeps cookies for the client `builder` builds.
    pub fn new(builder: reqwest::ClientBuilder) -> Self {
        Self {
            client: builder.build().expect("the HTTP client builds"),
            jar: Mutex::new(cookie_store::CookieStore::new()),
        }
    }

    /// A GET of `url`, to hand to [`CookieClient::send`].
    pub fn get(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        self.client.get(url)
    }

    /// A POST to `url`, to hand to [`CookieClient::send`].
    pub fn post(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        self.client.post(url)
    }

    /// Sends `request` with the cookies kept for its address (unless it carries a `Cookie`
    /// header of its own), and keeps those its response sets or removes.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> reqwest::Result<reqwest::Response> {
        let mut request = request.build()?;
        let url = request.url().clone();
        let kept = {
            let jar = self.jar.lock().unwrap();
            jar.get_request_values(&url)
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        if !kept.is_empty() && !request.headers().contains_key(COOKIE) {
            let value = HeaderValue::from_str(&kept).expect("kept cookies are header text");
            request.headers_mut().insert(COOKIE, value);
        }
        let response = self.client.execute(request).await?;
        let set = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| cookie_store::RawCookie::parse(v.to_owned()).ok());
        self.jar.lock().unwrap().store_response_cookies(set, &url);
        Ok(response)
    }
}
