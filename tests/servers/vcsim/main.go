// Command vcsim serves govmomi's vCenter simulator (the default VPX model) on one address, for the
// tests of ha-orchestrator. Debian ships the simulator library but no vcsim command; this is ours.
//
// The password comes from $VCSIM_PASSWORD, never from argv. TLS uses the given certificate and
// key (the simulator's built-in certificate has a 1024-bit key that OpenSSL refuses). It prints
// the SDK URL (without credentials) once it listens; SIGTERM closes the server and removes its
// temp dirs (/tmp/govcsim-*).
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/vmware/govmomi/simulator"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:0", "host:port to listen on")
	user := flag.String("user", "ha", "the user name that may log in")
	certFile := flag.String("cert", "", "TLS certificate (PEM)")
	keyFile := flag.String("key", "", "TLS private key (PEM)")
	flag.Parse()

	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return err
	}
	model := simulator.VPX()
	if err := model.Create(); err != nil {
		return err
	}
	defer model.Remove()
	password := os.Getenv("VCSIM_PASSWORD")
	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*user, password)}
	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	server := model.Service.NewServer()
	defer server.Close()

	shown := *server.URL
	shown.User = nil
	fmt.Println(shown.String())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	return nil
}
