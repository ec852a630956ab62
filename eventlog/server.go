package eventlog

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ServerConfig configures an embedded nats-server with JetStream.
type ServerConfig struct {
	// DataDir is where JetStream keeps its file store. Required.
	DataDir string
	// Name is the server's name; unique within a cluster. Default: generated.
	Name string
	// Host and Port are the client listener. Port 0 means 4222; -1 picks a
	// free port. Default host 127.0.0.1.
	Host string
	Port int
	// DontListen runs without a client listener; connect with
	// Server.Connect, which uses an in-process connection. Such a connection
	// cannot survive a server restart.
	DontListen bool
	// Cluster, when set, makes the server a node of a JetStream cluster.
	Cluster *ClusterConfig
	// Logger, when set, receives the server's log lines.
	Logger *slog.Logger
	// ReadyTimeout bounds the wait for the server to accept clients.
	// Default 10 seconds.
	ReadyTimeout time.Duration
}

// ClusterConfig makes an embedded server a cluster node.
type ClusterConfig struct {
	// Name is the cluster's name, the same on every node.
	Name string
	// Host and Port are this node's route listener.
	Host string
	Port int
	// Routes are the other nodes' route URLs, like nats-route://127.0.0.1:6222.
	Routes []string
}

// Server is an embedded nats-server. Its JetStream file store syncs every
// write to disk before acknowledging it (sync_interval: always), so an
// acknowledged event survives a crash of the process or the machine.
type Server struct {
	ns  *server.Server
	cfg ServerConfig
}

// StartServer starts an embedded nats-server with JetStream and waits until
// it accepts clients. In a cluster, JetStream may still be electing its
// leaders when this returns; Open waits for it.
func StartServer(cfg ServerConfig) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("eventlog: ServerConfig.DataDir is required")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 10 * time.Second
	}
	opts := &server.Options{
		ServerName:   cfg.Name,
		Host:         cfg.Host,
		Port:         cfg.Port,
		DontListen:   cfg.DontListen,
		JetStream:    true,
		StoreDir:     cfg.DataDir,
		SyncAlways:   true,
		SyncInterval: 2 * time.Minute, // Unused while SyncAlways; set so the server does not pick its default.
		NoSigs:       true,
		NoLog:        cfg.Logger == nil,
	}
	if c := cfg.Cluster; c != nil {
		if cfg.Name == "" {
			return nil, errors.New("eventlog: a cluster node needs ServerConfig.Name")
		}
		host := c.Host
		if host == "" {
			host = "127.0.0.1"
		}
		opts.Cluster = server.ClusterOpts{Name: c.Name, Host: host, Port: c.Port}
		for _, r := range c.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("eventlog: route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("eventlog: new server: %w", err)
	}
	if cfg.Logger != nil {
		ns.SetLoggerV2(slogAdapter{cfg.Logger}, false, false, false)
	}
	ns.Start()
	if !ns.ReadyForConnections(cfg.ReadyTimeout) {
		ns.Shutdown()
		return nil, fmt.Errorf("eventlog: server %q not ready after %s", cfg.Name, cfg.ReadyTimeout)
	}
	return &Server{ns: ns, cfg: cfg}, nil
}

// ClientURL returns the URL clients connect to ("" with DontListen).
func (s *Server) ClientURL() string {
	if s.cfg.DontListen {
		return ""
	}
	return s.ns.ClientURL()
}

// Name returns the server's name.
func (s *Server) Name() string { return s.ns.Name() }

// Connect returns a client connection: in-process with DontListen, otherwise
// over TCP with reconnects, so it survives a restart of the server on the
// same port.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	if s.cfg.DontListen {
		return nats.Connect("", append([]nats.Option{nats.InProcessServer(s.ns)}, opts...)...)
	}
	return nats.Connect(s.ClientURL(), append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}, opts...)...)
}

// Shutdown stops the server and waits until it has stopped. Everything it
// acknowledged is on disk.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Noticef(format string, v ...any) { a.l.Info(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any)  {}
