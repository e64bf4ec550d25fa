// The pin of Prometheus for the node's platform (pagestream.stack.node.platform): module
// v0.305.0 is Prometheus 3.5.0, the newest version prometheus-operator v0.85.0 lists as
// supported. Nothing is built from this module: Prometheus builds inside its own module (its
// go.mod has a replace line a wrapper would lose), fetched by `go mod download` here so that
// go.sum verifies it. Debian's prometheus package cannot stand in: it is built without
// Kubernetes service discovery, so no PodMonitor could be scraped.
module pagestream.dev/tools/prometheus

go 1.24.0

require github.com/prometheus/prometheus v0.305.0
