package luabind

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"luaserve/memcached"
)

// rmcCert makes a certificate for 127.0.0.1 and memc.test, signed by parent
// (self-signed when parent is nil), and writes cert and key as PEM files
// readable by memcached running as nobody.
func rmcCert(t *testing.T, dir, name string, isCA bool, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	} else {
		tmpl.DNSNames = []string{"memc.test"}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certPath, keyPath := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	require.NoError(t, os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	require.NoError(t, os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o644))
	return cert, key, certPath, keyPath
}

// rmcRealTLS starts memcached with TLS on every listener.
func rmcRealTLS(t *testing.T, certPath, keyPath string) int {
	t.Helper()
	return rmcRealTCP(t, "-Z", "-o", "ssl_chain_cert="+certPath+",ssl_key="+keyPath)
}

func TestRestyMemcachedTLS(t *testing.T) {
	if _, err := os.Stat(rmcMemcachedBin); err != nil {
		t.Skipf("%s not installed: %v", rmcMemcachedBin, err)
	}
	help, _ := exec.Command(rmcMemcachedBin, "-h").CombinedOutput()
	if !strings.Contains(string(help), "enable-ssl") {
		t.Skip("this memcached was built without TLS support (no --enable-ssl in memcached -h)")
	}
	dir := rmcSharedDir(t)
	ca, caKey, caPath, _ := rmcCert(t, dir, "ca", true, nil, nil)
	_, _, leafPath, leafKeyPath := rmcCert(t, dir, "leaf", false, ca, caKey)
	_, _, selfPath, selfKeyPath := rmcCert(t, dir, "self", false, nil, nil)
	// Go reads the system roots once per process, from SSL_CERT_FILE when set.
	t.Setenv("SSL_CERT_FILE", caPath)

	port := rmcRealTLS(t, leafPath, leafKeyPath)
	selfPort := rmcRealTLS(t, selfPath, selfKeyPath)
	plain := rmcBackends(t)[0].port

	pools := &memcached.Pools{}
	t.Cleanup(func() { pools.Close() })
	e := newRmcEnv(t, pools)
	code := `
		local memc = memcached:new()
		memc:set_timeout(2000)
		assert(memc:connect(HOST, PORT))
		local reused = memc:get_reused_times()
		local sess, err = memc:sslhandshake(nil, "memc.test", false)
		if not sess then ngx.say("failed to do ssl handshake: ", err) return end
		ngx.say(reused, " ", type(sess), " ", memc:get_reused_times())
		ngx.say(memc:set("dog", 32))
		ngx.say(memc:get("dog"))
		ngx.say(memc:sslhandshake(false))
		ngx.say(memc:set_keepalive(10000, 10))
	`
	assert.Equal(t, "0 userdata 0\n1\n320\ntrue\n1\n", e.run(t, port, code))
	// The pooled TLS connection comes back from connect() itself.
	assert.Equal(t, "1 userdata 1\n1\n320\ntrue\n1\n", e.run(t, port, code))
	assert.Empty(t, e.logged())

	trusted := false
	if roots, err := x509.SystemCertPool(); err == nil {
		_, err := ca.Verify(x509.VerifyOptions{Roots: roots})
		trusted = err == nil
	}
	cases := []struct {
		name, code, want, log string
		port                  int
		needTrust             bool
	}{
		{"verified", `
			local memc = memcached:new()
			assert(memc:connect(HOST, PORT))
			ngx.say(type(memc:sslhandshake(nil, "memc.test", true)))
			ngx.say(memc:set("k", "v"))
		`, "userdata\n1\n", "", port, true},
		{"host mismatch", `
			local memc = memcached:new()
			assert(memc:connect(HOST, PORT))
			ngx.say(memc:sslhandshake(nil, "other.test", true))
			ngx.say(memc:get("k"))
		`, "nilcertificate host mismatch\nnilnilclosed\n", `lua ssl certificate does not match host "other.test"`, port, true},
		{"self-signed", `
			local memc = memcached:new()
			assert(memc:connect(HOST, PORT))
			ngx.say(memc:sslhandshake(nil, "memc.test", true))
		`, "nil18: self-signed certificate\n", "lua ssl certificate verify error: (18: self-signed certificate)", selfPort, false},
		{"self-signed unverified", `
			local memc = memcached:new()
			assert(memc:connect(HOST, PORT))
			ngx.say(memc:sslhandshake(false, "memc.test"))
			ngx.say(memc:version() ~= nil)
		`, "true\ntrue\n", "", selfPort, false},
		{"not a TLS server", `
			local memc = memcached:new()
			memc:set_timeout(2000)
			assert(memc:connect(HOST, PORT))
			ngx.say(memc:sslhandshake(nil, "memc.test", false))
		`, "nilhandshake failed\n", "SSL_do_handshake() failed", plain, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needTrust && !trusted {
				t.Skip("the system roots were loaded before SSL_CERT_FILE was set, so the test CA cannot be trusted in this process")
			}
			e := newRmcEnv(t, nil)
			assert.Equal(t, tc.want, e.run(t, tc.port, tc.code))
			if tc.log == "" {
				assert.Empty(t, e.logged())
				return
			}
			first := e.firstLog(t)
			assert.Equal(t, LogErr, first.level)
			assert.True(t, strings.HasPrefix(first.msg, tc.log), first.msg)
		})
	}
}
