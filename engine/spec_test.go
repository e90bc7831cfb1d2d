package engine

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSpecSmoke(t *testing.T) {
	var out bytes.Buffer
	p, f, err := RunSpecs(SpecOptions{Prefix: "testdata", Paths: []string{"spec/pass_spec.lua"}, Out: &out})
	t.Log(out.String())
	require.NoError(t, err)
	require.Equal(t, 0, f)
	require.NotZero(t, p)
}
