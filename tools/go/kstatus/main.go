// pagestream-kstatus: sigs.k8s.io/cli-utils' kstatus as a command. It reads Kubernetes objects
// as JSON on stdin (one object, a List with items, or a stream of either) and prints, for each,
// one JSON line: {"kind", "namespace", "name", "status", "message"}, where status is what
// kstatus' status.Compute says (InProgress, Failed, Current, Terminating, NotFound, Unknown).
// This is the verdict Flux's health checks and kpt wait on; the operator's integration tests
// ask it about the status objects the operator wrote.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

func compute(raw json.RawMessage, out *json.Encoder) error {
	var probe struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return err
	}
	if probe.Items != nil {
		for _, item := range probe.Items {
			if err := compute(item, out); err != nil {
				return err
			}
		}
		return nil
	}
	// Unstructured's own decoder: integers become int64, as kstatus' NestedInt64 reads them.
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		return fmt.Errorf("not a Kubernetes object: %w", err)
	}
	res, err := status.Compute(u)
	if err != nil {
		return fmt.Errorf("%s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	return out.Encode(verdict{u.GetKind(), u.GetNamespace(), u.GetName(), res.Status.String(), res.Message})
}

func main() {
	in := json.NewDecoder(bufio.NewReader(os.Stdin))
	out := json.NewEncoder(os.Stdout)
	for {
		var raw json.RawMessage
		err := in.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return
		}
		if err == nil {
			err = compute(raw, out)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "kstatus:", err)
			os.Exit(1)
		}
	}
}
