//! HTTPS (C7, S10): the rustls server configuration of a site — its certificate from
//! `DATA/pki/` ([`crate::pki`]) and, for mutual TLS, a client certificate verifier that
//! trusts the site CA only — and the listener serving the API with it (`axum-server`).
//! Every request that came over HTTPS carries a [`TlsPeer`] extension with the client
//! certificate the peer presented, if any (linked sites check it: [`crate::links`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config::ClientCertificates;
use crate::pki::SitePki;
use crate::site::Site;

/// How often a running site checks whether its certificate is due for renewal.
const RENEWAL_CHECK: Duration = Duration::from_secs(6 * 3600);

/// What the TLS handshake of a request's connection established: the end-entity
/// certificate the client presented (DER), already verified against the site CA, or none.
/// Present on every request that came over HTTPS, absent on plain HTTP.
#[derive(Clone, Debug)]
pub struct TlsPeer {
    pub certificate: Option<rustls::pki_types::CertificateDer<'static>>,
}

/// The rustls acceptor, adding a [`TlsPeer`] extension to every request of the connection.
#[derive(Clone)]
struct PeerAcceptor(axum_server::tls_rustls::RustlsAcceptor);

impl<I, S> axum_server::accept::Accept<I, S> for PeerAcceptor
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: Send + 'static,
{
    type Stream = tokio_rustls::server::TlsStream<I>;
    type Service = axum::middleware::AddExtension<S, TlsPeer>;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = std::io::Result<(Self::Stream, Self::Service)>> + Send>,
    >;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let handshake = self.0.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = handshake.await?;
            let certificate = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.clone().into_owned());
            let service = tower::Layer::layer(&axum::Extension(TlsPeer { certificate }), service);
            Ok((stream, service))
        })
    }
}

/// The rustls server configuration: the site certificate, HTTP/2 and HTTP/1.1 by ALPN, and
/// the client certificate policy — with [`ClientCertificates::Required`] a client without
/// a certificate signed by the site CA fails the handshake; with
/// [`ClientCertificates::Optional`] it may present none, but one it presents must be the
/// site CA's.
pub fn server_config(
    pki: &SitePki,
    client_certificates: ClientCertificates,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(pki.root_store()),
        provider.clone(),
    );
    let verifier = match client_certificates {
        ClientCertificates::Required => builder,
        ClientCertificates::Optional => builder.allow_unauthenticated(),
    }
    .build()
    .context("cannot set up client certificate verification with the site CA")?;
    let (certs, key) = pki.site_certificate()?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot set up TLS")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "cannot use the site certificate {}",
                pki.site_certificate_path().display()
            )
        })?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Serves `app` over HTTPS on `listener` until `handle` is told to shut down. Every few
/// hours it checks the site certificate and, when it was re-issued (near expiry), serves
/// new connections with the new one.
pub(crate) async fn serve_https(
    site: Arc<Site>,
    listener: tokio::net::TcpListener,
    app: axum::Router,
    handle: axum_server::Handle<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    let mode = site.config.tls.client_certificates;
    let config =
        axum_server::tls_rustls::RustlsConfig::from_config(server_config(&site.pki, mode)?);
    let renewal = {
        let config = config.clone();
        let site = site.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RENEWAL_CHECK).await;
                let renewed = {
                    let site = site.clone();
                    tokio::task::spawn_blocking(move || {
                        site.pki.renew_site_certificate(&site.config)
                    })
                    .await
                };
                match renewed {
                    Ok(Ok(true)) => match server_config(&site.pki, mode) {
                        Ok(c) => config.reload_from_config(c),
                        Err(e) => {
                            tracing::error!(error = %format!("{e:#}"), "cannot load the renewed site certificate")
                        }
                    },
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "cannot renew the site certificate"),
                    Err(e) => tracing::error!(error = %e, "the certificate renewal check failed"),
                }
            }
        })
    };
    let result = axum_server::Server::<std::net::SocketAddr>::from_listener(listener)
        .acceptor(PeerAcceptor(axum_server::tls_rustls::RustlsAcceptor::new(
            config,
        )))
        .handle(handle)
        .serve(app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .await;
    renewal.abort();
    result.context("the HTTPS server stopped")
}
