module causeflow.example/receiver

go 1.19
