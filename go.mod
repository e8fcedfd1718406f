module github.com/lbkit/lbkit

go 1.26
