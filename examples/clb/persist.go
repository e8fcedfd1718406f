package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/lbkit/lbkit/examples/clb/admin"
)

// The runtime API writes a change through to where the configuration
// came from by editing the document it was decoded from (File.src): the
// value at PREFIX/config in etcd, or the file. The document is decoded
// to YAML nodes, the backend's Weight is set in every group the
// listener draws on, and the nodes are encoded again: the values of
// every other field are kept, but not the layout (indentation, quoting,
// JSON turns to YAML; comments are mostly kept, by yaml.v3's rules).

// serverNodes returns the mappings of backend id in the groups listener
// l draws on (its own and its rules'), in doc, a configuration document.
// A backend is a server of its group, not of the listener: every
// listener on the same group shares its Weight, as in the CLB.
func serverNodes(doc *yaml.Node, l *Listener, id string) []*yaml.Node {
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	type group struct{ list, idKey, id, servers string }
	var gs []group
	switch {
	case l.VServerGroupId != "":
		gs = append(gs, group{"VServerGroups", "VServerGroupId", l.VServerGroupId, "BackendServers"})
	case l.MasterSlaveServerGroupId != "":
		gs = append(gs, group{"MasterSlaveServerGroups", "MasterSlaveServerGroupId", l.MasterSlaveServerGroupId, "MasterSlaveBackendServers"})
	default:
		gs = append(gs, group{servers: "BackendServers"})
	}
	for _, r := range l.Rules {
		gs = append(gs, group{"VServerGroups", "VServerGroupId", r.VServerGroupId, "BackendServers"})
	}
	var found []*yaml.Node
	seen := map[*yaml.Node]bool{}
	for _, g := range gs {
		owner := root
		if g.list != "" {
			owner = nil
			for _, n := range seqOf(mapValue(root, g.list)) {
				if v := mapValue(n, g.idKey); v != nil && v.Value == g.id {
					owner = n
				}
			}
		}
		for _, s := range seqOf(mapValue(owner, g.servers)) {
			if v := mapValue(s, "ServerId"); v != nil && v.Value == id && !seen[s] {
				seen[s] = true
				found = append(found, s)
			}
		}
	}
	return found
}

// mapValue returns the value of key in mapping m, or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// seqOf returns the items of sequence n (none if n is not one).
func seqOf(n *yaml.Node) []*yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	return n.Content
}

// docWeight returns the Weight server s gives, 100 if it gives none.
func docWeight(s *yaml.Node) int {
	if v := mapValue(s, "Weight"); v != nil {
		if w, err := strconv.Atoi(v.Value); err == nil {
			return w
		}
	}
	return 100
}

// setDocWeight sets server s's Weight to w, adding the key if needed.
func setDocWeight(s *yaml.Node, w int) {
	val := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(w)}
	if v := mapValue(s, "Weight"); v != nil {
		*v = *val
		return
	}
	s.Content = append(s.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "Weight"}, val)
}

// editWeight returns data, a configuration document, with backend id's
// Weight in listener l's groups set by set (given the Weight it has),
// and whether anything changed. A backend DNS discovery feeds has no
// entry in the document: an admin.ErrConflict.
func editWeight(data []byte, l *Listener, id string, set func(old int) int) ([]byte, bool, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil { // it was decoded before: cannot happen
		return nil, false, err
	}
	servers := serverNodes(&doc, l, id)
	if len(servers) == 0 {
		return nil, false, fmt.Errorf("%w: backend %s has no entry in the configuration (DNS discovery feeds its group): its weight cannot be written there", admin.ErrConflict, id)
	}
	changed := false
	for _, s := range servers {
		if old := docWeight(s); set(old) != old {
			setDocWeight(s, set(old))
			changed = true
		}
	}
	if !changed {
		return data, false, nil
	}
	var b bytes.Buffer
	e := yaml.NewEncoder(&b)
	e.SetIndent(2)
	if err := e.Encode(&doc); err != nil {
		return nil, false, err
	}
	return b.Bytes(), true, e.Close()
}

// modeOf is the mode of the file at path, or def if there is none.
func modeOf(path string, def os.FileMode) os.FileMode {
	if fi, err := os.Stat(path); err == nil {
		return fi.Mode().Perm()
	}
	return def
}

// writeFileAtomic replaces the file at path with data, mode perm: data
// goes to a temporary file in the same directory, which is then renamed
// over path, so a reader (a SIGHUP, a crash) sees the old file or the new
// one, never half of one. A symbolic link at path is replaced by the
// file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
