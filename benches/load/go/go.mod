module loadbench

go 1.19
