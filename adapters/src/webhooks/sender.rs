//! One signed POST per attempt, over a pooled client that never follows redirects, ignores
//! proxy variables, and refuses private destinations after DNS resolution.

use std::{
    error::Error as _,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use reqwest::{
    Client,
    dns::{Addrs, Name, Resolve, Resolving},
    redirect::Policy,
};
use tollgate_domain::{
    delivery::RESPONSE_SNIPPET_BYTES,
    ports::{AttemptOutcome, DeliveryError, OutgoingDelivery, WebhookSender},
    resources::webhooks::{is_forbidden_host, is_forbidden_ip},
};

use super::signing;

/// Response bytes read at most (the rest is not waited for).
const MAX_READ_BYTES: usize = 64 * 1024;

/// The resolver's refusal, recognised again in the error chain.
#[derive(Debug)]
struct Forbidden;

impl std::fmt::Display for Forbidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("destination resolves to a forbidden address")
    }
}

impl std::error::Error for Forbidden {}

/// System DNS, with private answers refused unless allowed. Checking the addresses the
/// connection will really use (not a separate lookup) defeats DNS rebinding.
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow_private && addrs.iter().any(|a| is_forbidden_ip(a.ip())) {
                return Err(Box::new(Forbidden) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

pub struct HttpWebhookSender {
    /// Clients by `allow_private` (the setting is fixed per process, but the port carries it).
    guarded: Client,
    open: Client,
}

impl HttpWebhookSender {
    pub fn new() -> Result<Self, reqwest::Error> {
        let build = |allow_private: bool| {
            Client::builder()
                .redirect(Policy::none())
                .no_proxy()
                .user_agent("Tollgate-Webhooks/1")
                .pool_idle_timeout(Duration::from_secs(30))
                .dns_resolver(Arc::new(GuardedResolver { allow_private }))
                .build()
        };
        Ok(Self {
            guarded: build(false)?,
            open: build(true)?,
        })
    }

    async fn attempt(
        &self,
        delivery: &OutgoingDelivery,
    ) -> Result<(u16, Option<String>), DeliveryError> {
        let url = reqwest::Url::parse(&delivery.url).map_err(|_| DeliveryError::Connect)?;
        let literal_forbidden = url.host_str().is_some_and(|h| {
            is_forbidden_host(h)
                || h.trim_matches(['[', ']'])
                    .parse::<IpAddr>()
                    .is_ok_and(is_forbidden_ip)
        });
        if !delivery.allow_private && literal_forbidden {
            return Err(DeliveryError::DestinationForbidden);
        }
        let client = if delivery.allow_private {
            &self.open
        } else {
            &self.guarded
        };
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        let signature = signing::signature_header(
            &delivery.secrets,
            &delivery.event_id,
            timestamp,
            &delivery.body,
        );
        let hex = signing::hex_signature(
            delivery
                .secrets
                .first()
                .map(String::as_str)
                .unwrap_or_default(),
            &delivery.body,
        )
        .unwrap_or_default();
        let mut response = client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &delivery.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header("x-webhook-signature", hex)
            .header("x-webhook-event", &delivery.event_type)
            .body(delivery.body.clone())
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while body.len() < MAX_READ_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) if e.is_timeout() => return Err(DeliveryError::Timeout),
                Err(_) => return Err(DeliveryError::InvalidResponse),
            }
        }
        body.truncate(RESPONSE_SNIPPET_BYTES);
        let snippet = (!body.is_empty()).then(|| String::from_utf8_lossy(&body).into_owned());
        Ok((status, snippet))
    }
}

fn classify(error: &reqwest::Error) -> DeliveryError {
    let mut source = error.source();
    while let Some(cause) = source {
        if cause.is::<Forbidden>() {
            return DeliveryError::DestinationForbidden;
        }
        let text = cause.to_string().to_ascii_lowercase();
        if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
            return DeliveryError::Tls;
        }
        source = cause.source();
    }
    if error.is_timeout() {
        DeliveryError::Timeout
    } else if error.is_connect() {
        DeliveryError::Connect
    } else {
        DeliveryError::InvalidResponse
    }
}

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn send(&self, delivery: &OutgoingDelivery) -> AttemptOutcome {
        let started = Instant::now();
        let limit = Duration::from_millis(delivery.timeout_ms.max(1));
        let result = tokio::time::timeout(limit, self.attempt(delivery))
            .await
            .unwrap_or(Err(DeliveryError::Timeout));
        let duration_ms = started.elapsed().as_millis() as u64;
        let outcome = match &result {
            Ok((status, _)) if (200..300).contains(status) => "success",
            _ => "failure",
        };
        metrics::counter!("tollgate_webhook_deliveries_total", "outcome" => outcome).increment(1);
        match result {
            Ok((status, snippet)) => AttemptOutcome {
                status_code: Some(status),
                error: None,
                duration_ms,
                response_body: snippet,
            },
            Err(error) => AttemptOutcome {
                status_code: None,
                error: Some(error),
                duration_ms,
                response_body: None,
            },
        }
    }
}
