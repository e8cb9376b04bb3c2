package storage

