module luaserve

go 1.26

require (
	github.com/andybalholm/brotli v1.2.2 // indirect
	github.com/bradfitz/gomemcache v0.0.0-20260422231931-4d751bb6e37c // indirect
	github.com/dlclark/regexp2 v1.12.0 // indirect
	github.com/klauspost/compress v1.19.1 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
	github.com/valyala/fasthttp v1.73.0 // indirect
	github.com/yuin/gopher-lua v1.1.2 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	layeh.com/gopher-luar v1.0.11 // indirect
)
