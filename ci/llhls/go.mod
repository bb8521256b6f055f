module lpt.test/ci/llhls

go 1.26

require (
	github.com/bluenviron/gohlslib v1.4.0
	github.com/bluenviron/mediacommon v1.11.1-0.20240525122142-20163863aa75
)

require (
	github.com/abema/go-mp4 v1.2.0 // indirect
	github.com/asticode/go-astikit v0.30.0 // indirect
	github.com/asticode/go-astits v1.13.0 // indirect
	github.com/google/uuid v1.3.0 // indirect
)
