# Run in a sandbox by crates/fnbox/tests/programs/python.rs, which checks every line it prints.
import socket
import ssl
import threading

ctx = ssl.create_default_context()
print("default context:", ctx.verify_mode == ssl.CERT_REQUIRED, ctx.check_hostname)
print("system CA bundle loaded:", ctx.cert_store_stats()["x509_ca"] > 50)
explicit = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
explicit.load_verify_locations(cafile="/etc/ssl/certs/ca-certificates.crt")
print("explicit CA file:", explicit.cert_store_stats()["x509_ca"] == ctx.cert_store_stats()["x509_ca"])
paths = ssl.get_default_verify_paths()
print("default paths:", paths.openssl_cafile, paths.openssl_capath)

server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
server_ctx.load_cert_chain("/code/cert.pem", "/code/key.pem")
listener = socket.create_server(("127.0.0.1", 0))
port = listener.getsockname()[1]


def serve(count):
    for _ in range(count):
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"echo: " + tls.recv(100))
        except ssl.SSLError:
            pass


server = threading.Thread(target=serve, args=(2,))
server.start()
client_ctx = ssl.create_default_context(cafile="/code/cert.pem")
with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
    with client_ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"over tls")
        print("handshake:", tls.version(), dict(x[0] for x in tls.getpeercert()["subject"])["commonName"])
        print("reply:", tls.recv(100).decode())
# The system CAs do not trust a certificate made a moment ago.
with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
    try:
        ssl.create_default_context().wrap_socket(raw, server_hostname="localhost")
        print("untrusted: accepted")
    except ssl.SSLCertVerificationError as e:
        print("untrusted:", e.verify_message)
server.join(timeout=30)
print("server done:", not server.is_alive())
