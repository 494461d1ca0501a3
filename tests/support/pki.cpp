// testing::pki: X.509 with OpenSSL 3 (EVP_EC_gen, X509_* builders, PEM writers).
#include "pki.hpp"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <memory>
#include <stdexcept>

namespace testing::pki {

namespace {

struct key_free {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct cert_free {
    void operator()(X509* c) const { X509_free(c); }
};
using key_ptr = std::unique_ptr<EVP_PKEY, key_free>;
using cert_ptr = std::unique_ptr<X509, cert_free>;

[[noreturn]] void fail(const std::string& what) {
    unsigned long e = ERR_get_error();
    char buf[256] = {0};
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    throw std::runtime_error("pki: " + what + (e ? std::string(": ") + buf : std::string()));
}

key_ptr new_key() {
    key_ptr k(EVP_EC_gen("P-256"));
    if (!k)
        fail("cannot generate an EC key");
    return k;
}

void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (!ext)
        fail(std::string("cannot make extension ") + OBJ_nid2sn(nid));
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

/// A certificate for 'key' with subject CN=cn, signed by issuer_key (issuer = itself when null).
cert_ptr make_cert(EVP_PKEY* key, const std::string& cn, X509* issuer, EVP_PKEY* issuer_key, bool ca,
                   const char* eku, const char* san) {
    cert_ptr c(X509_new());
    if (!c)
        fail("X509_new");
    X509_set_version(c.get(), 2);
    unsigned char serial[16];
    if (RAND_bytes(serial, sizeof serial) != 1)
        fail("RAND_bytes");
    serial[0] &= 0x7f;
    BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c.get()));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(c.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(c.get()), 24 * 3600);
    X509_set_pubkey(c.get(), key);
    X509_NAME* name = X509_get_subject_name(c.get());
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("edibroker tests"), -1,
                               -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                               0);
    X509* iss = issuer ? issuer : c.get();
    X509_set_issuer_name(c.get(), X509_get_subject_name(iss));
    if (ca) {
        add_ext(c.get(), iss, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(c.get(), iss, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(c.get(), iss, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(c.get(), iss, NID_key_usage, "critical,digitalSignature,keyAgreement");
        add_ext(c.get(), iss, NID_ext_key_usage, eku);
        if (san)
            add_ext(c.get(), iss, NID_subject_alt_name, san);
    }
    add_ext(c.get(), iss, NID_subject_key_identifier, "hash");
    if (X509_sign(c.get(), issuer_key ? issuer_key : key, EVP_sha256()) == 0)
        fail("cannot sign the certificate for " + cn);
    return c;
}

void write_key(const std::filesystem::path& p, EVP_PKEY* k) {
    FILE* f = std::fopen(p.c_str(), "wb");
    if (!f)
        throw std::runtime_error("pki: cannot write " + p.string());
    bool ok = PEM_write_PrivateKey(f, k, nullptr, nullptr, 0, nullptr, nullptr) == 1;
    std::fclose(f);
    if (!ok)
        fail("cannot write the key " + p.string());
}

void write_cert(const std::filesystem::path& p, X509* c) {
    FILE* f = std::fopen(p.c_str(), "wb");
    if (!f)
        throw std::runtime_error("pki: cannot write " + p.string());
    bool ok = PEM_write_X509(f, c) == 1;
    std::fclose(f);
    if (!ok)
        fail("cannot write the certificate " + p.string());
}

} // namespace

files generate(const std::filesystem::path& dir, const std::string& client_cn) {
    std::filesystem::create_directories(dir);
    files out;
    out.ca_cert = dir / "ca.pem";
    out.server_cert = dir / "server.pem";
    out.server_key = dir / "server.key";
    out.client_cert = dir / "client.pem";
    out.client_key = dir / "client.key";
    out.client_cn = client_cn;

    key_ptr ca_key = new_key();
    cert_ptr ca = make_cert(ca_key.get(), "edibroker test CA", nullptr, nullptr, true, nullptr, nullptr);
    key_ptr server_key = new_key();
    cert_ptr server = make_cert(server_key.get(), "127.0.0.1", ca.get(), ca_key.get(), false, "serverAuth",
                                "IP:127.0.0.1,DNS:localhost");
    key_ptr client_key = new_key();
    cert_ptr client = make_cert(client_key.get(), client_cn, ca.get(), ca_key.get(), false, "clientAuth", nullptr);

    write_cert(out.ca_cert, ca.get());
    write_cert(out.server_cert, server.get());
    write_key(out.server_key, server_key.get());
    write_cert(out.client_cert, client.get());
    write_key(out.client_key, client_key.get());
    return out;
}

} // namespace testing::pki
