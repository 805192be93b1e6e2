module github.com/aforo/aforo-go

go 1.19
