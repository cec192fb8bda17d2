//! nginx as a PROXY-protocol origin (`listen ... proxy_protocol`) for the proxy e2e tests.

use toa_lab::addr;

use super::ProxyLab;

/// Starts nginx on the origin at ORIGIN_V4/ORIGIN_V6:`port` with `listen ... proxy_protocol`,
/// logging `$proxy_protocol_addr:$proxy_protocol_port` per request; the access log's path.
pub fn start_nginx(lab: &mut ProxyLab, port: u16) -> std::path::PathBuf {
    let dir = lab.topo.lab.dir().join("nginx");
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let d = dir.display();
    let conf = format!(
        r#"daemon off;
master_process off;
user root;
pid {d}/nginx.pid;
error_log {d}/logs/error.log info;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    log_format pp '$proxy_protocol_addr:$proxy_protocol_port';
    server {{
        listen {o4}:{port} proxy_protocol;
        listen [{o6}]:{port} proxy_protocol;
        access_log {d}/logs/access.log pp;
        location / {{ return 200 "ok\n"; }}
    }}
}}
"#,
        o4 = addr::ORIGIN_V4,
        o6 = addr::ORIGIN_V6,
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let (prefix, conf) = (
        dir.to_str().unwrap().to_string(),
        conf_path.to_str().unwrap().to_string(),
    );
    let error_log = dir.join("logs/error.log").to_str().unwrap().to_string();
    lab.spawn_origin(
        &["nginx", "-p", &prefix, "-c", &conf, "-e", &error_log],
        port,
    );
    dir.join("logs/access.log")
}
