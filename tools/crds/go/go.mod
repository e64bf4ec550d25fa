// Pinned Go modules whose zips carry upstream CRD YAML. Nothing is built from this module:
// `pagestream.stack.crds` runs `go mod download -json <module>` here (so go.sum verifies each
// zip) and copies the CRD files it names out of the module folder.
module pagestream.dev/tools/crds

go 1.24

require (
	github.com/cloudnative-pg/cloudnative-pg v1.30.0
	github.com/kubeflow/spark-operator/v2 v2.5.2
	github.com/prometheus-operator/prometheus-operator v0.85.0
)
